{#- Fails for every row where the expression is false or null (null is not "true"); narrow the rows
    checked with the test's `config: where:`. -#}
{% test expression_is_true(model, expression, column_name=none) %}

select * from {{ model }}

where not coalesce({{ expression }}, false)

{% endtest %}
