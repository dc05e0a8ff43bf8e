{#- The load time after which an incremental model (re)processes its input: the newest load time
    it has already seen, minus var incremental_lookback_minutes, or the epoch when the model is still
    empty. Models read `loaded_at > watermark`.

    It is looked up before the model's query runs and rendered as a literal: a constant lets the
    warehouse skip whole blocks of the append-only bronze table (DuckDB row-group zone maps,
    Snowflake micro-partition pruning), where a scalar subquery would make it read them all. -#}
{% macro load_watermark(loaded_at_column) -%}
    {%- set epoch = "cast('1970-01-01 00:00:00+00:00' as " ~ marketpulse.type_timestamp_tz() ~ ")" -%}
    {%- if not execute -%}
        {{ return(epoch) }}
    {%- endif -%}
    {%- set lookback = var('incremental_lookback_minutes') | int -%}
    {%- set newest = 'max(' ~ loaded_at_column ~ ')' -%}
    {%- set reprocess_from = 'coalesce(' ~ dbt.dateadd('minute', -1 * lookback, newest) ~ ', ' ~ epoch ~ ')' -%}
    {%- if model.resource_type == 'unit_test' -%}
        {#- A unit test's `this` is a fixture inside the test query: it cannot be queried beforehand. -#}
        {{ return('(select ' ~ reprocess_from ~ ' from ' ~ this ~ ')') }}
    {%- endif -%}
    {%- set query -%}
        select cast({{ reprocess_from }} as {{ dbt.type_string() }}) as watermark from {{ this }}
    {%- endset -%}
    {%- set watermark = run_query(query).columns[0].values()[0] -%}
    {{ return("cast('" ~ watermark ~ "' as " ~ marketpulse.type_timestamp_tz() ~ ")") }}
{%- endmacro %}
