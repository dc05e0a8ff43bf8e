{#- Helpers whose SQL differs between DuckDB and Snowflake; everything else in the models is SQL
    that both engines accept. Each dispatches on the adapter (default__ is Snowflake's dialect). -#}

{% macro type_timestamp_tz() -%}
    {{ return(adapter.dispatch('type_timestamp_tz', 'marketpulse')()) }}
{%- endmacro %}

{% macro default__type_timestamp_tz() -%}
    timestamp_tz
{%- endmacro %}

{% macro duckdb__type_timestamp_tz() -%}
    timestamptz
{%- endmacro %}


{#- The calendar date of a UTC instant in the exchange's time zone (var exchange_timezone). -#}
{% macro exchange_date(column) -%}
    {{ return(adapter.dispatch('exchange_date', 'marketpulse')(column)) }}
{%- endmacro %}

{% macro default__exchange_date(column) -%}
    cast(convert_timezone('{{ var("exchange_timezone") }}', {{ column }}) as date)
{%- endmacro %}

{% macro duckdb__exchange_date(column) -%}
    cast(timezone('{{ var("exchange_timezone") }}', {{ column }}) as date)
{%- endmacro %}


{#- True when a double is a real number: not NaN, not ±infinity. Both engines order NaN above every
    number, so `price > 0` alone would accept it. -#}
{% macro is_finite(column) -%}
    {{ return(adapter.dispatch('is_finite', 'marketpulse')(column)) }}
{%- endmacro %}

{% macro default__is_finite(column) -%}
    ({{ column }} not in (cast('NaN' as double), cast('inf' as double), cast('-inf' as double)))
{%- endmacro %}

{% macro duckdb__is_finite(column) -%}
    isfinite({{ column }})
{%- endmacro %}


{#- True when the whole string matches the regular expression. -#}
{% macro full_match(column, pattern) -%}
    {{ return(adapter.dispatch('full_match', 'marketpulse')(column, pattern)) }}
{%- endmacro %}

{% macro default__full_match(column, pattern) -%}
    regexp_like({{ column }}, '{{ pattern }}')
{%- endmacro %}

{% macro duckdb__full_match(column, pattern) -%}
    regexp_full_match({{ column }}, '{{ pattern }}')
{%- endmacro %}


{#- A timestamp plus a whole number of seconds (negative to subtract). -#}
{% macro add_seconds(column, seconds) -%}
    {{ return(dbt.dateadd('second', seconds | int, column)) }}
{%- endmacro %}
