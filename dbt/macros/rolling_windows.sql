{#- Trailing windows over a daily series, unrolled: for each length in `windows`, one `select` over
    `source` with `window_days` and each aggregate of `value` over that symbol's last `window_days`
    rows by trade_date, joined with `union all`. `aggregates` maps an output column to an aggregate
    function (e.g. {'close_count': 'count', 'close_average': 'avg'}); `keep` columns pass through.
    Callers keep only full windows (their count equals window_days). -#}
{% macro rolling_windows(source, windows, value, aggregates, keep=[]) -%}
    {%- for window_days in windows %}
    select
        symbol,
        trade_date,
        {{ window_days }} as window_days,
        {%- for column in keep %}
        {{ column }},
        {%- endfor %}
        {%- for name, function in aggregates.items() %}
        {{ function }}({{ value }}) over (
            partition by symbol order by trade_date
            rows between {{ window_days - 1 }} preceding and current row
        ) as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ source }}
    {%- if not loop.last %}

    union all
    {% endif %}
    {%- endfor %}
{%- endmacro %}
