{#- Typed access to project vars that callers may pass as text (e.g. from an environment variable). -#}

{#- Known symbols: a list, or a comma-separated string; upper-cased, empty entries dropped. -#}
{% macro watchlist() -%}
    {%- set raw = var('watchlist', []) -%}
    {%- if raw is none -%}
        {%- set raw = [] -%}
    {%- elif raw is string -%}
        {%- set raw = raw.split(',') -%}
    {%- endif -%}
    {%- set symbols = [] -%}
    {%- for symbol in raw -%}
        {%- set cleaned = (symbol | string | trim | upper) -%}
        {%- if cleaned and cleaned not in symbols -%}
            {%- do symbols.append(cleaned) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(symbols | sort) }}
{%- endmacro %}

{#- A var that holds one positive integer or a list of them (e.g. window lengths). -#}
{% macro int_list_var(name, minimum=1) -%}
    {%- set raw = var(name) -%}
    {%- if raw is string -%}
        {%- set raw = raw.split(',') -%}
    {%- elif raw is number -%}
        {%- set raw = [raw] -%}
    {%- endif -%}
    {%- set values = [] -%}
    {%- for item in raw -%}
        {%- set value = (item | string | trim | int(-1)) -%}
        {%- if value < minimum -%}
            {%- do exceptions.raise_compiler_error(
                "var " ~ name ~ ": " ~ (item | string) ~ " is not a whole number >= " ~ minimum
                ~ "; pass e.g. [5, 20, 60]"
            ) -%}
        {%- endif -%}
        {%- if value not in values -%}
            {%- do values.append(value) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if values | length == 0 -%}
        {%- do exceptions.raise_compiler_error("var " ~ name ~ " is empty; pass e.g. [5, 20, 60]") -%}
    {%- endif -%}
    {{ return(values | sort) }}
{%- endmacro %}
