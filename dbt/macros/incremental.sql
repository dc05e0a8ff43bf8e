{#- The load time after which an incremental model (re)processes its input: the newest load time
    it has already seen, minus var incremental_lookback_minutes, or the epoch when the model is still
    empty. Models read `loaded_at > watermark`. `relation` is where that newest load time is kept:
    the model itself (`this`, the default) or, for a model whose rows do not record every load it
    has processed, a relation that does (the epoch while that relation does not exist).

    It is looked up before the model's query runs and rendered as a literal: a constant lets the
    warehouse skip whole blocks of the append-only bronze table (DuckDB row-group zone maps,
    Snowflake micro-partition pruning), where a scalar subquery would make it read them all. -#}
{% macro load_watermark(loaded_at_column, relation=none) -%}
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
    {%- set source_relation = this if relation is none else relation -%}
    {%- if relation is not none and adapter.get_relation(
        database=relation.database, schema=relation.schema, identifier=relation.identifier
    ) is none -%}
        {{ return(epoch) }}
    {%- endif -%}
    {%- set query -%}
        select cast({{ reprocess_from }} as {{ dbt.type_string() }}) as watermark from {{ source_relation }}
    {%- endset -%}
    {%- set watermark = run_query(query).columns[0].values()[0] -%}
    {{ return("cast('" ~ watermark ~ "' as " ~ marketpulse.type_timestamp_tz() ~ ")") }}
{%- endmacro %}


{#- fct_rejected_ticks_watermark, next to fct_rejected_ticks: where fct_rejected_ticks keeps its
    progress (see that model). -#}
{% macro rejected_ticks_watermark() -%}
    {{ return(api.Relation.create(
        database=this.database, schema=this.schema, identifier='fct_rejected_ticks_watermark'
    )) }}
{%- endmacro %}
