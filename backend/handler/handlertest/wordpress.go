// Package handlertest creates the application tables the handler tests need: WordPress's
// users and usermeta tables, as WordPress core creates them on MySQL/MariaDB
// (wp-admin/includes/schema.php), and their closest equivalents on SQLite and PostgreSQL.
package handlertest

import (
	"testing"

	"github.com/mooxsync/mooxsync/backend/sqldb"
	"github.com/mooxsync/mooxsync/backend/sqldb/sqldbtest"
)

// CreateWordPressUsers creates prefix+"users" and prefix+"usermeta" (prefix "wp_": wp_users
// and wp_usermeta) in db. On MySQL the statements are WordPress core's own: an unsigned
// auto-increment ID, no unique index on user_login or user_email, a usermeta table without
// a unique (user_id, meta_key). PostgreSQL keeps the column name "ID" quoted, and a
// timestamp column cannot default to WordPress's zero date.
func CreateWordPressUsers(tb testing.TB, db *sqldb.DB, prefix string) {
	tb.Helper()
	q := db.Dialect().QuoteIdent
	users, meta := prefix+"users", prefix+"usermeta"
	sqldbtest.MustExec(tb, db, map[string]string{
		"mysql": `CREATE TABLE ` + q(users) + ` (
	ID bigint(20) unsigned NOT NULL auto_increment,
	user_login varchar(60) NOT NULL default '',
	user_pass varchar(255) NOT NULL default '',
	user_nicename varchar(50) NOT NULL default '',
	user_email varchar(100) NOT NULL default '',
	user_url varchar(100) NOT NULL default '',
	user_registered datetime NOT NULL default '0000-00-00 00:00:00',
	user_activation_key varchar(255) NOT NULL default '',
	user_status int(11) NOT NULL default '0',
	display_name varchar(250) NOT NULL default '',
	PRIMARY KEY  (ID),
	KEY user_login_key (user_login),
	KEY user_nicename (user_nicename),
	KEY user_email (user_email)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci;
CREATE TABLE ` + q(meta) + ` (
	umeta_id bigint(20) unsigned NOT NULL auto_increment,
	user_id bigint(20) unsigned NOT NULL default '0',
	meta_key varchar(255) default NULL,
	meta_value longtext,
	PRIMARY KEY  (umeta_id),
	KEY user_id (user_id),
	KEY meta_key (meta_key(191))
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci`,
		"postgres": `CREATE TABLE ` + q(users) + ` (
	"ID" BIGSERIAL PRIMARY KEY,
	user_login VARCHAR(60) NOT NULL DEFAULT '',
	user_pass VARCHAR(255) NOT NULL DEFAULT '',
	user_nicename VARCHAR(50) NOT NULL DEFAULT '',
	user_email VARCHAR(100) NOT NULL DEFAULT '',
	user_url VARCHAR(100) NOT NULL DEFAULT '',
	user_registered TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00',
	user_activation_key VARCHAR(255) NOT NULL DEFAULT '',
	user_status INTEGER NOT NULL DEFAULT 0,
	display_name VARCHAR(250) NOT NULL DEFAULT ''
);
CREATE INDEX ` + q(prefix+"user_login_key") + ` ON ` + q(users) + ` (user_login);
CREATE INDEX ` + q(prefix+"user_nicename") + ` ON ` + q(users) + ` (user_nicename);
CREATE INDEX ` + q(prefix+"user_email") + ` ON ` + q(users) + ` (user_email);
CREATE TABLE ` + q(meta) + ` (
	umeta_id BIGSERIAL PRIMARY KEY,
	user_id BIGINT NOT NULL DEFAULT 0,
	meta_key VARCHAR(255) DEFAULT NULL,
	meta_value TEXT
);
CREATE INDEX ` + q(prefix+"usermeta_user_id") + ` ON ` + q(meta) + ` (user_id);
CREATE INDEX ` + q(prefix+"usermeta_meta_key") + ` ON ` + q(meta) + ` (meta_key)`,
		"sqlite": `CREATE TABLE ` + q(users) + ` (
	ID INTEGER PRIMARY KEY AUTOINCREMENT,
	user_login VARCHAR(60) NOT NULL DEFAULT '',
	user_pass VARCHAR(255) NOT NULL DEFAULT '',
	user_nicename VARCHAR(50) NOT NULL DEFAULT '',
	user_email VARCHAR(100) NOT NULL DEFAULT '',
	user_url VARCHAR(100) NOT NULL DEFAULT '',
	user_registered DATETIME NOT NULL DEFAULT '0000-00-00 00:00:00',
	user_activation_key VARCHAR(255) NOT NULL DEFAULT '',
	user_status INTEGER NOT NULL DEFAULT 0,
	display_name VARCHAR(250) NOT NULL DEFAULT ''
);
CREATE INDEX ` + q(prefix+"user_login_key") + ` ON ` + q(users) + ` (user_login);
CREATE INDEX ` + q(prefix+"user_nicename") + ` ON ` + q(users) + ` (user_nicename);
CREATE INDEX ` + q(prefix+"user_email") + ` ON ` + q(users) + ` (user_email);
CREATE TABLE ` + q(meta) + ` (
	umeta_id INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id BIGINT NOT NULL DEFAULT 0,
	meta_key VARCHAR(255) DEFAULT NULL,
	meta_value LONGTEXT
);
CREATE INDEX ` + q(prefix+"usermeta_user_id") + ` ON ` + q(meta) + ` (user_id);
CREATE INDEX ` + q(prefix+"usermeta_meta_key") + ` ON ` + q(meta) + ` (meta_key)`,
	})
}

// Meta returns the meta rows of the users with the given login as meta_key -> meta_value
// (nil for NULL), read with plain SQL.
func Meta(tb testing.TB, db *sqldb.DB, prefix, login string) map[string]any {
	tb.Helper()
	q := db.Dialect().QuoteIdent
	p := db.Dialect().Placeholder
	rows, err := db.SQL().Query(`SELECT m.meta_key, m.meta_value FROM `+q(prefix+"usermeta")+` m JOIN `+
		q(prefix+"users")+` u ON u.`+q("ID")+` = m.user_id WHERE u.user_login = `+p(1), login)
	if err != nil {
		tb.Fatalf("read %susermeta: %v", prefix, err)
	}
	defer rows.Close()
	out := map[string]any{}
	for rows.Next() {
		var k string
		var v *string
		if err := rows.Scan(&k, &v); err != nil {
			tb.Fatal(err)
		}
		if v == nil {
			out[k] = nil
		} else {
			out[k] = *v
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// Count returns the number of rows of table.
func Count(tb testing.TB, db *sqldb.DB, table string) int {
	tb.Helper()
	var n int
	if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM ` + db.Dialect().QuoteIdent(table)).Scan(&n); err != nil {
		tb.Fatalf("count %s: %v", table, err)
	}
	return n
}
