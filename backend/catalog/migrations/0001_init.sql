-- The control center's catalog: platforms and syncs with the Moox Sync columns, plus what
-- the control center learns about each agent. Tokens are never stored here: they live in
-- the OS keyring (backend/secrets).

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value ANY  NOT NULL
) STRICT;

-- revision is the fleet's desired-state counter, bumped with every change to platforms or
-- syncs (PROTOCOL.md section 6).
INSERT INTO meta (key, value) VALUES ('revision', 0);

CREATE TABLE platforms (
	-- AUTOINCREMENT: an id is never reused, so a new platform can never inherit the keyring
	-- entry (platform/<id>) or the enrollment of a deleted one.
	id                  INTEGER PRIMARY KEY AUTOINCREMENT,
	name                TEXT    NOT NULL COLLATE NOCASE UNIQUE,
	domain              TEXT    NOT NULL COLLATE NOCASE UNIQUE,
	ip_address          TEXT,
	thumbnail           TEXT,
	master              INTEGER NOT NULL DEFAULT 0 CHECK (master IN (0, 1)),
	locked              INTEGER NOT NULL DEFAULT 0 CHECK (locked IN (0, 1)),
	lock_reason         TEXT,
	show_in_menu        INTEGER NOT NULL DEFAULT 1 CHECK (show_in_menu IN (0, 1)),
	"order"             INTEGER NOT NULL DEFAULT 0 CHECK ("order" >= 0),
	read_only           INTEGER NOT NULL DEFAULT 0 CHECK (read_only IN (0, 1)),
	agent_url           TEXT    NOT NULL UNIQUE,
	tls_fingerprint     TEXT,
	pending_fingerprint TEXT,
	enrolled_at         TEXT,
	acked_revision      INTEGER NOT NULL DEFAULT 0,
	created_at          TEXT    NOT NULL,
	updated_at          TEXT    NOT NULL
) STRICT;

CREATE TABLE syncs (
	id                     INTEGER PRIMARY KEY AUTOINCREMENT,
	syncable_id            INTEGER,
	syncable_type          TEXT,
	source_platform_id     INTEGER NOT NULL REFERENCES platforms (id) ON DELETE RESTRICT,
	source_model           TEXT    NOT NULL,
	target_platform_id     INTEGER NOT NULL REFERENCES platforms (id) ON DELETE RESTRICT,
	target_model           TEXT    NOT NULL,
	use_platform_relations INTEGER NOT NULL DEFAULT 0 CHECK (use_platform_relations IN (0, 1)),
	if_exists              TEXT    NOT NULL DEFAULT 'update' CHECK (if_exists IN ('update', 'skip', 'error')),
	sync_ids               TEXT,    -- JSON array of record identifiers, NULL for all records
	sync_all_fields        INTEGER NOT NULL DEFAULT 1 CHECK (sync_all_fields IN (0, 1)),
	field_mappings         TEXT,    -- JSON object source field -> target field
	use_transformer_class  TEXT,
	has_errors             INTEGER NOT NULL DEFAULT 0 CHECK (has_errors IN (0, 1)),
	error_message          TEXT,
	"interval"             INTEGER NOT NULL DEFAULT 60 CHECK ("interval" >= 1),
	last_sync              TEXT,
	status                 INTEGER NOT NULL DEFAULT 1 CHECK (status IN (0, 1)),
	title                  TEXT    NOT NULL,
	created_at             TEXT    NOT NULL,
	updated_at             TEXT    NOT NULL
) STRICT;

CREATE INDEX syncs_source_platform ON syncs (source_platform_id);
CREATE INDEX syncs_target_platform ON syncs (target_platform_id);
-- One sync per route: two identical syncs would deliver every change twice.
CREATE UNIQUE INDEX syncs_route ON syncs (
	source_platform_id, source_model COLLATE NOCASE, target_platform_id, target_model COLLATE NOCASE
);

-- agent_status holds what the control center saw when it polled an agent.
CREATE TABLE agent_status (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	platform_id INTEGER NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
	at          TEXT    NOT NULL,
	online      INTEGER NOT NULL CHECK (online IN (0, 1)),
	version     TEXT    NOT NULL DEFAULT '',
	revision    INTEGER NOT NULL DEFAULT 0,
	raw         TEXT,    -- JSON of protocol.Status, NULL when the agent did not answer
	error       TEXT
) STRICT;

CREATE INDEX agent_status_platform_at ON agent_status (platform_id, at, id);

-- push_history holds one row per desired-state push to one agent.
CREATE TABLE push_history (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	at          TEXT    NOT NULL,
	platform_id INTEGER NOT NULL REFERENCES platforms (id) ON DELETE CASCADE,
	revision    INTEGER NOT NULL,
	result      TEXT    NOT NULL CHECK (result IN ('ok', 'failed', 'unreachable')),
	code        TEXT    NOT NULL DEFAULT '',
	message     TEXT    NOT NULL DEFAULT '',
	duration_ms INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX push_history_at ON push_history (at, id);
CREATE INDEX push_history_platform_at ON push_history (platform_id, at, id);
