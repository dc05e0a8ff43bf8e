{% macro generate_schema_name(custom_schema_name, node) -%}
    {#- A layer's schema is exactly its configured name (bronze, silver, gold by default), not dbt's
        "<target schema>_<layer>": the gold relation names are a public contract that the dashboard
        and analysts query. Nodes without a layer (tests) use the target's schema. -#}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
