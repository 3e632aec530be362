-- transformer_config: the JSON object handed to the sync's transformer
-- (use_transformer_class), e.g. the declarative transformer's rename/drop/set/map_values;
-- NULL when it takes none. An addition to Moox's columns (docs/protocol.md section 9).
ALTER TABLE syncs ADD COLUMN transformer_config TEXT;
