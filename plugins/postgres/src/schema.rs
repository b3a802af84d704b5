//! `mode = "schema"`: PostgreSQL has no `CREATE SCHEMA ... TEMPLATE`, so a
//! slot's schema is cloned from the migrated template schema in one
//! server-side block (one transaction): sequences, tables with their data,
//! column defaults re-pointed at the new sequences, identity positions,
//! foreign keys, views, functions and triggers. Types (enums, domains) stay
//! in the template schema and are shared; the template outlives the slots.

/// The SQL that makes schema `dst`, marked with `marker`, as a copy of `src`.
/// Both names are partest's own (lowercase letters, digits, `_`), so the
/// `src.` → `dst.` rewrite of catalog-rendered definitions is exact.
pub fn clone_sql(src: &str, dst: &str, marker: &str) -> String {
    format!(
        r#"DO $partest$
DECLARE
    src text := '{src}';
    dst text := '{dst}';
    r record;
    cols text;
BEGIN
    -- With neither schema on the path, the catalog renders every name qualified.
    SET LOCAL search_path = pg_catalog;
    EXECUTE format('CREATE SCHEMA %I', dst);
    EXECUTE format('COMMENT ON SCHEMA %I IS %L', dst, '{marker}');
    -- Sequences other than identity ones (LIKE ... INCLUDING IDENTITY makes those).
    FOR r IN SELECT s.* FROM pg_sequences s
             JOIN pg_class c ON c.relname = s.sequencename
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = s.schemaname
             WHERE s.schemaname = src
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                               WHERE d.objid = c.oid AND d.deptype = 'i')
    LOOP
        EXECUTE format('CREATE SEQUENCE %I.%I AS %s INCREMENT BY %s MINVALUE %s MAXVALUE %s START WITH %s %s',
            dst, r.sequencename, r.data_type, r.increment_by, r.min_value, r.max_value,
            r.start_value, CASE WHEN r.cycle THEN 'CYCLE' ELSE 'NO CYCLE' END);
        IF r.last_value IS NOT NULL THEN
            EXECUTE format('SELECT setval(%L, %s, true)', dst || '.' || r.sequencename, r.last_value);
        END IF;
    END LOOP;
    -- Tables and their rows.
    FOR r IN SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = src AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             ORDER BY c.oid
    LOOP
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING ALL)', dst, r.relname, src, r.relname);
        SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
          FROM pg_attribute WHERE attrelid = r.oid AND attnum > 0 AND NOT attisdropped AND attgenerated = '';
        IF cols IS NOT NULL THEN
            EXECUTE format('INSERT INTO %I.%I (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %I.%I',
                dst, r.relname, cols, cols, src, r.relname);
        END IF;
    END LOOP;
    -- Defaults that call the template's sequences call the slot's own.
    FOR r IN SELECT c.relname, a.attname, pg_get_expr(d.adbin, d.adrelid) AS expr
             FROM pg_attrdef d JOIN pg_class c ON c.oid = d.adrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
             WHERE n.nspname = src AND a.attgenerated = ''
               AND pg_get_expr(d.adbin, d.adrelid) LIKE '%' || src || '.%'
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ALTER COLUMN %I SET DEFAULT %s',
            dst, r.relname, r.attname, replace(r.expr, src || '.', dst || '.'));
    END LOOP;
    -- Identity columns continue where the template's left off.
    FOR r IN SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = src AND a.attidentity <> '' AND c.relkind IN ('r', 'p')
    LOOP
        EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, %L), last_value, is_called) FROM %s',
            dst || '.' || quote_ident(r.relname), r.attname,
            pg_get_serial_sequence(src || '.' || quote_ident(r.relname), r.attname));
    END LOOP;
    -- Foreign keys, now that every table exists.
    FOR r IN SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) AS def
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = src AND k.contype = 'f' ORDER BY k.oid
    LOOP
        EXECUTE format('ALTER TABLE %I.%I ADD CONSTRAINT %I %s',
            dst, r.relname, r.conname, replace(r.def, src || '.', dst || '.'));
    END LOOP;
    -- Functions, then views (they may call them), then triggers.
    FOR r IN SELECT p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = src AND p.prokind IN ('f', 'p') ORDER BY p.oid
    LOOP
        EXECUTE replace(pg_get_functiondef(r.oid), src || '.', dst || '.');
    END LOOP;
    FOR r IN SELECT c.oid, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = src AND c.relkind IN ('v', 'm') ORDER BY c.oid
    LOOP
        EXECUTE format('CREATE %s %I.%I AS %s',
            CASE WHEN r.relkind = 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END,
            dst, r.relname, replace(pg_get_viewdef(r.oid), src || '.', dst || '.'));
    END LOOP;
    FOR r IN SELECT t.oid FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = src AND NOT t.tgisinternal ORDER BY t.oid
    LOOP
        EXECUTE replace(pg_get_triggerdef(r.oid), src || '.', dst || '.');
    END LOOP;
END
$partest$;"#
    )
}
