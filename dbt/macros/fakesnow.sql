{#- fakesnow (the local Snowflake stand-in that tests use) runs on DuckDB, which refuses temporary
    tables under a database-qualified name ("TEMPORARY table names can *only* use the temp
    catalog"): dbt-snowflake's incremental models and unit tests both create such temp relations.
    Against fakesnow only, create a transient table instead; dbt drops it at the end of the node
    as it would drop the temp table. On a real Snowflake account nothing changes. -#}

{% macro is_fakesnow() -%}
    {{ return(target.type == 'snowflake' and (target.get('account') or '') | lower == 'fakesnow') }}
{%- endmacro %}

{% macro snowflake__create_table_temporary_sql(relation, compiled_code) -%}
    {%- if marketpulse.is_fakesnow() -%}
        {{ dbt.snowflake__create_table_transient_sql(relation, compiled_code) }}
    {%- else -%}
        {{ dbt.snowflake__create_table_temporary_sql(relation, compiled_code) }}
    {%- endif -%}
{%- endmacro %}

{#- fakesnow counts the out-of-line constraints of a CREATE TABLE ... AS SELECT (a model's primary
    key) as columns and refuses the statement ("Invalid column definition list"). Against fakesnow
    only, the contract's columns (types, not null) without the model-level constraints, which
    Snowflake records but does not enforce. -#}
{% macro snowflake__get_table_columns_and_constraints() -%}
    {%- if marketpulse.is_fakesnow() -%}
        ({{ adapter.render_raw_columns_constraints(raw_columns=model['columns']) | join(', ') }})
    {%- else -%}
        {{ dbt.table_columns_and_constraints() }}
    {%- endif -%}
{%- endmacro %}
