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
