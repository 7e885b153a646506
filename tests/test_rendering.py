"""A step's templates rendered from one Scope read exactly as Jinja's own render: the same text, the same
autoescaping and inheritance, the same sandbox, the same error with its file and line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from campaignkit.core.errors import TemplateStepError
from campaignkit.core.templating import Scope, make_environment

VARIABLES = {"target": {"name": "Ada <admin>", "plan": "pro"}, "context": {"n": 3}}


@pytest.fixture
def env(tmp_path: Path) -> jinja2.Environment:
    (tmp_path / "base.html").write_text("<h1>{% block title %}Base{% endblock %}</h1>{{ target.name }}\n")
    (tmp_path / "child.html").write_text('{% extends "base.html" %}{% block title %}Hi {{ target.name }}'
                                         "{% endblock %}")
    (tmp_path / "broken.txt").write_text("line one\n{{ target.name | int(strict) }}\n")
    (tmp_path / "name.txt").write_text("{{ target.name }}")
    return make_environment([tmp_path])


def test_every_kind_of_template_renders_as_jinja_renders_it(env: jinja2.Environment) -> None:
    templates = [
        env.from_string("Hello {{ target.name }}, {{ context.n * 2 }} {% for i in range(2) %}{{ i }}{% endfor %}"),
        env.overlay(autoescape=True).from_string("<p>{{ target.name }}</p>"),  # inline HTML, autoescaped
        env.get_template("child.html"),  # a file with inheritance and blocks
        env.from_string("{% set plan = 'free' %}{{ plan }}"),
        env.from_string("{{ plan | default('unset') }} {{ target.plan }}"),  # the set above does not leak here
    ]
    scope = Scope(VARIABLES)
    assert [scope.render(t) for t in templates] == [t.render(VARIABLES) for t in templates]
    assert scope.render(templates[2]) == "<h1>Hi Ada &lt;admin&gt;</h1>Ada &lt;admin&gt;\n"
    assert scope.render(templates[4]) == "unset pro"


def test_parts_rendered_from_one_scope_each_start_as_new(env: jinja2.Environment) -> None:
    """The parts share a context: nothing one sets or changes reaches the next, even after a failed render."""
    scope = Scope(VARIABLES)
    first = env.from_string("{% set target = {'name': 'x'} %}{% macro m() %}m{% endmacro %}{{ m() }}")
    assert scope.render(first) == "m"
    assert scope.render(env.from_string("{{ target.name }} {{ m is defined }}")) == "Ada <admin> False"
    with pytest.raises(TemplateStepError, match="has no attribute 'missing'"):
        scope.render(env.from_string("{% autoescape true %}{{ target.missing }}{% endautoescape %}"))
    # join reads the autoescape in force as it runs (escaping beside a safe string): that scope ended with the failure
    assert scope.render(env.from_string("{{ ['<b>' | safe, target.name] | join }}")) == "<b>Ada <admin>"
    assert scope.evaluate(env.compile_expression("target.plan == 'pro'")) is True


def test_scopes_on_one_thread_never_share_a_render(env: jinja2.Environment) -> None:
    """A render within a render (a callable a template is given, rendering from another scope) reads its own
    variables, and the outer one goes on reading its own; the next scope on the thread reads only what it is given."""
    inner = env.from_string("{% set plan = 'inner' %}{{ target.name }}/{{ plan }}")

    def nested() -> str:
        return Scope({"target": {"name": "Bob"}}).render(inner)

    assert Scope(VARIABLES).render(env.from_string("{{ target.plan }}")) == "pro"  # leaves a context idle
    # An include reads the variables of the context it is in when it runs, after the nested render.
    outer = env.from_string("{{ target.name }} [{{ nested() }}] {% include 'name.txt' %} {{ plan | default('-') }}")
    assert Scope({**VARIABLES, "nested": nested}).render(outer) == "Ada <admin> [Bob/inner] Ada <admin> -"
    assert Scope({"target": {"name": "Cy"}}).render(inner) == "Cy/inner"
    assert Scope({"target": {"name": "Di"}}).render(env.from_string("{{ target.name }} {{ plan is defined }}")) \
        == "Di False"


def test_the_sandbox_holds_and_errors_name_their_line(env: jinja2.Environment) -> None:
    scope = Scope(VARIABLES)
    with pytest.raises(TemplateStepError, match="unsafe"):
        scope.render(env.from_string("{{ target.__class__.__mro__[1].__subclasses__() }}"))
    with pytest.raises(TemplateStepError, match="on line 2: 'dict object' has no attribute 'missing'"):
        scope.render(env.from_string("ok\n{{ target.missing }}"))
    with pytest.raises(TemplateStepError, match=r"broken\.txt, line 2"):
        scope.render(env.get_template("broken.txt"))


def test_data_reads_as_in_jinjas_own_sandbox(env: jinja2.Environment) -> None:
    """``target.x`` takes a shortcut for plain dicts (core/templating.py CampaignSandbox): it must read what Jinja's
    own sandbox reads, a key named like a dict method included, and refuse what it refuses."""
    jinja = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    data = {"target": {"email": "ada@example.org", "items": "three", "nested": {"plan": "pro"}},
            "now": datetime(2030, 1, 2, 3, 4, 5)}
    for source in ["{{ target.email }}", "{{ target.items is callable }}", "{{ target['items'] }}",
                   "{{ target.nested.plan }}", "{{ now.year }}", "{{ target.get('email') }}",
                   "{{ target.missing is defined }}", "{{ target.keys() | list | length }}"]:
        assert Scope(data).render(env.from_string(source)) == jinja.from_string(source).render(data), source
    assert Scope(data).render(env.from_string("{{ target.items is callable }}")) == "True"
    with pytest.raises(TemplateStepError, match="has no attribute 'missing'"):
        Scope(data).render(env.from_string("{{ target.missing }}"))
    with pytest.raises(TemplateStepError, match="unsafe"):
        Scope(data).render(env.from_string("{{ target.nested.__class__.__subclasses__() }}"))
    with pytest.raises(TemplateStepError, match="unsafe"):
        Scope(data).render(env.from_string("{{ target.nested.update({'plan': 'free'}) }}"))
