{#- The bronze table the transform loads, created empty when it is missing so that `dbt build`
    also runs on its own (a fresh DuckDB file, a new Snowflake database). Columns are the bronze
    table's one declaration (src/marketpulse/warehouse/bronze.py, which the loaders create it from;
    tests/dbt/test_bronze_table.py keeps the two equal).
    Runs as the project's on-run-start hook. -#}
{% macro create_bronze_raw_ticks() -%}
    {%- set schema = var('bronze_schema', env_var('MARKETPULSE_BRONZE_SCHEMA', 'bronze')) -%}
    {%- set relation = api.Relation.create(database=target.database, schema=schema, identifier='raw_ticks') -%}
    {%- do adapter.create_schema(relation) -%}
    {%- set timestamp_tz = marketpulse.type_timestamp_tz() -%}
    create table if not exists {{ relation }} (
        symbol varchar,
        price double,
        size bigint,
        event_time {{ timestamp_tz }},
        ingest_time {{ timestamp_tz }},
        source varchar,
        producer_id varchar,
        seq bigint,
        schema_version integer,
        _object_key varchar,
        _loaded_at {{ timestamp_tz }}
    )
{%- endmacro %}
