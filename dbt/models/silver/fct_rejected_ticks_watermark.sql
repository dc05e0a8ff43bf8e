{{ config(materialized='table') }}

{#- How far fct_rejected_ticks has processed bronze: the newest load time in fct_ticks once
    fct_rejected_ticks has run after it. fct_rejected_ticks cannot keep this itself, since its rows
    are only the rejects: a load without any reject leaves no trace there, and the next run would
    read bronze from the start again. It runs after fct_rejected_ticks (depends_on below) and only
    when that succeeded, so it never runs ahead of it; when it lags (a run stopped in between), the
    next run re-reads a few loads, which delete+insert on whole loads makes harmless. -#}

-- depends_on: {{ ref('fct_rejected_ticks') }}

with

kept_ticks as (

    select loaded_at from {{ ref('fct_ticks') }}

),

final as (

    select max(loaded_at) as loaded_at

    from kept_ticks

)

select * from final
