"""Compiling the LLM parts of a spec: `models:`, `type: llm` columns and an LLM `source`
(lowering into the Plan IR, and the diagnostics with their positions)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime import plan as ir
from synthc.compiler import check_source, compile_source
from synthc.diagnostics import Diagnostic
from synthc.errors import SpecError

MODELS = """
models:
  writer: {model: fake/writer}
  judge: {model: fake/judge}
"""


def spec(body: str, models: str = MODELS) -> str:
    return "synthc: 1\n" + textwrap.dedent(models) + textwrap.dedent(body)


def diags(text: str) -> list[Diagnostic]:
    return check_source(text, "t.yaml")


def codes(text: str) -> list[tuple[str, int, int]]:
    return [(d.code, d.span.line, d.span.col) if d.span else (d.code, 0, 0) for d in diags(text)]


def one(text: str, code: str) -> Diagnostic:
    found = diags(text)
    assert [d.code for d in found] == [code], [(d.code, d.message) for d in found]
    return found[0]


def at(text: str, diag: Diagnostic) -> str:
    """The source text from the diagnostic's position to the end of its line."""
    assert diag.span is not None
    return text.splitlines()[diag.span.line - 1][diag.span.col - 1 :]


def llm(plan: ir.Plan, name: str) -> ir.LLMColumn:
    col = plan.column(name)
    assert isinstance(col, ir.LLMColumn)
    return col


# --------------------------------------------------------------------------- lowering


def test_llm_column_lowers_prompts_inputs_params_and_output() -> None:
    plan = compile_source(
        spec(
            """
            vars: {company: Acme}
            columns:
              triage:
                type: llm
                model: judge
                system: "You triage tickets for {{ company }}."
                prompt: "Classify {{ customer }}'s ticket: {{ body }}"
                params: {temperature: 0, max_tokens: 50}
                output:
                  type: object
                  properties: {urgency: {enum: [low, high]}, topic: {type: string}}
                  required: [urgency]
                nulls: 0.25
              body: {type: llm, model: writer, prompt: Write a ticket.}
              customer: {type: person}
            """
        )
    )
    triage = llm(plan, "triage")
    assert triage.model == "judge"
    assert triage.inputs == ("body", "customer")  # declared order, vars are not inputs
    assert triage.system == "You triage tickets for {{ company }}."
    assert triage.params == '{"max_tokens":50,"temperature":0}'
    assert json.loads(triage.output or "") == {
        "type": "object",
        "properties": {"urgency": {"enum": ["low", "high"]}, "topic": {"type": "string"}},
        "required": ["urgency"],
    }
    assert triage.output == ir.canonical_json(json.loads(triage.output or ""))
    assert triage.nulls == 0.25
    body = llm(plan, "body")
    assert (body.inputs, body.system, body.params, body.output) == ((), None, "{}", None)
    order = [c.name for c in plan.columns]
    assert order.index("triage") > order.index("body")
    assert plan.column_order == ("triage", "body", "customer")
    assert ir.plan_from_json(ir.plan_to_json(plan)) == plan


def test_a_struct_field_reference_depends_on_the_whole_column() -> None:
    plan = compile_source(
        spec(
            """
            columns:
              reply: {type: llm, model: writer, prompt: "Answer a {{ triage.urgency }} ticket"}
              triage:
                type: llm
                model: judge
                prompt: Invent a ticket's triage.
                output: {type: object, properties: {urgency: {type: string}}}
            """
        )
    )
    assert llm(plan, "reply").inputs == ("triage",)
    assert [c.name for c in plan.columns] == ["triage", "reply"]


def test_model_aliases_get_defaults_keep_api_base_unresolved_and_only_used_ones_are_planned() -> None:
    plan = compile_source(
        spec(
            """
            columns:
              a: {type: llm, model: writer, prompt: x}
              b: {type: llm, model: local, prompt: y}
            """,
            models="""
            models:
              local:
                model: openai/llama
                fallbacks: [fake/one, fake/two]
                params: {temperature: 0.5}
                api_base: ${LOCAL_BASE}/v1
                api_key_env: LOCAL_KEY
                concurrency: 4
                rpm: 60
                tpm: 1000
                timeout: 5
                retries: 0
                backoff: 0
              spare: {model: fake/spare}
              writer: {model: fake/writer}
            """,
        )
    )
    assert [m.name for m in plan.models] == ["local", "writer"]  # declared order, no `spare`
    assert plan.model("writer") == ir.ModelAlias("writer", "fake/writer")
    assert plan.model("local") == ir.ModelAlias(
        "local",
        "openai/llama",
        ("fake/one", "fake/two"),
        '{"temperature":0.5}',
        api_base="${LOCAL_BASE}/v1",
        api_key_env="LOCAL_KEY",
        concurrency=4,
        rpm=60,
        tpm=1000,
        timeout=5.0,
        retries=0,
        backoff=0.0,
    )
    assert isinstance(plan.model("local").timeout, float)


def test_operational_model_settings_do_not_change_the_plan_hash() -> None:
    body = """
    columns:
      a: {type: llm, model: writer, prompt: x}
    """
    base = compile_source(spec(body, "models:\n  writer: {model: fake/w}\n"))
    tuned = compile_source(
        spec(
            body,
            "models:\n  writer: {model: fake/w, concurrency: 99, rpm: 5, timeout: 1, api_base: http://x}\n",
        )
    )
    other = compile_source(spec(body, "models:\n  writer: {model: fake/w, params: {temperature: 1}}\n"))
    assert ir.plan_hash(base) == ir.plan_hash(tuned)
    assert ir.plan_hash(base) != ir.plan_hash(other)


def test_source_fields_are_the_first_columns_in_schema_order() -> None:
    plan = compile_source(
        spec(
            """
            rows: 40
            vars: {shop: Velo}
            source:
              type: llm
              model: writer
              prompt: "Invent customers of {{ shop }}."
              schema:
                type: object
                properties: {name: {type: string}, city: {type: string}, age: {type: integer}}
            columns:
              hello: {type: template, template: "Hi {{ name }} from {{ city }}"}
              id: {type: uuid}
            """
        )
    )
    assert plan.rows == 40
    assert plan.column_order == ("name", "city", "age", "hello", "id")
    assert plan.columns[:3] == (ir.RecordField("name"), ir.RecordField("city"), ir.RecordField("age"))
    hello = plan.column("hello")
    assert isinstance(hello, ir.TemplateColumn) and hello.inputs == ("name", "city")
    assert plan.source == ir.LLMSource(
        "writer",
        "Invent customers of {{ shop }}.",
        ir.canonical_json(
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "city": {"type": "string"},
                    "age": {"type": "integer"},
                },
            }
        ),
        per_call=20,
    )
    assert [m.name for m in plan.models] == ["writer"]


def test_a_source_needs_no_columns_but_a_spec_without_one_does() -> None:
    source = """
    source:
      type: llm
      model: writer
      prompt: Invent cities.
      system: Be brief.
      per_call: 100
      schema: {type: object, properties: {city: {type: string}}}
    """
    plan = compile_source(spec(source))
    assert plan.column_order == ("city",)
    assert plan.source is not None and (plan.source.per_call, plan.source.system) == (100, "Be brief.")
    assert compile_source(spec(source + "columns: {}\n")).column_order == ("city",)
    assert codes(spec("rows: 1\n")) == [("missing-key", 1, 1)]


# --------------------------------------------------------------------------- diagnostics


def test_unknown_model_points_at_the_alias_and_suggests_one() -> None:
    text = spec(
        """
        columns:
          body: {type: llm, model: writr, prompt: x}
        """
    )
    diag = one(text, "unknown-model")
    assert at(text, diag).startswith("writr,")
    assert diag.message == "column `body`: unknown model `writr`"
    assert diag.hint == "did you mean `writer`?"


def test_a_raw_model_string_is_an_unknown_model_with_a_hint() -> None:
    text = "synthc: 1\ncolumns:\n  body: {type: llm, model: openai/gpt-4o-mini, prompt: x}\n"
    diag = one(text, "unknown-model")
    assert diag.hint is not None and "models:" in diag.hint and "declared: none" in diag.hint


def test_prompt_and_system_references_are_checked_like_templates() -> None:
    text = spec(
        """
        columns:
          product: {type: category, values: [a, b]}
          body:
            type: llm
            model: writer
            system: "You sell {{ prodct }}s."
            prompt: "Write about {{ product }} and {{ nothing_like_it }}."
        """
    )
    found = diags(text)
    assert [d.code for d in found] == ["unknown-reference", "unknown-reference"]
    assert at(text, found[0]).startswith("prodct }}")
    assert found[0].message.startswith("column `body`: system prompt uses `prodct`")
    assert found[0].hint == "did you mean `product`?"
    assert at(text, found[1]).startswith("nothing_like_it }}")
    assert found[1].message.startswith("column `body`: prompt uses `nothing_like_it`")


def test_prompt_syntax_errors_and_self_references() -> None:
    text = spec(
        """
        columns:
          a: {type: llm, model: writer, prompt: "{{ a }} again"}
          b: {type: llm, model: writer, prompt: "{{ b "}
        """
    )
    assert [d.code for d in diags(text)] == ["cycle", "template-syntax"]


def test_llm_columns_that_use_each_other_are_a_cycle() -> None:
    text = spec(
        """
        columns:
          q: {type: llm, model: writer, prompt: "{{ a }}"}
          a: {type: llm, model: writer, prompt: "{{ q }}"}
        """
    )
    assert [(c, line) for c, line, _ in codes(text)] == [("cycle", 8), ("cycle", 9)]
    assert "`q` → `a` → `q`" in diags(text)[0].message


def test_env_vars_are_refused_everywhere_but_api_base() -> None:
    text = spec(
        """
        vars: {keys: [plain, "k=${SECRET_KEY}"]}
        columns:
          t: {type: template, template: "${HOME} {{ x }}"}
          x: {type: category, values: ["${A}", b]}
          ok: {type: template, template: "costs ${{ x }}"}
        """,
        models="""
        models:
          writer:
            model: ${MODEL}
            api_base: ${BASE}
            api_key_env: OPENAI_API_KEY
        """,
    )
    found = diags(text)
    assert [d.code for d in found] == ["env-var-not-allowed"] * 4
    assert [at(text, d)[:4] for d in found] == ["${MO", "${SE", "${HO", "${A}"]
    assert found[0].message == (
        "`models.writer.model` uses `${MODEL}`, but only a model's `api_base` reads environment variables"
    )
    assert found[0].hint is not None and "api_key_env" in found[0].hint


def test_reserved_params_are_reported_at_their_keys_in_models_and_columns() -> None:
    text = spec(
        """
        columns:
          body:
            type: llm
            model: writer
            prompt: x
            params: {temperature: 1, response_format: {type: json_object}, messages: []}
        """,
        models="""
        models:
          writer: {model: fake/w, params: {timeout: 3, seed: 1}}
        """,
    )
    found = diags(text)
    assert [(d.code, at(text, d).split(":")[0]) for d in found] == [
        ("reserved-param", "timeout"),
        ("reserved-param", "response_format"),
        ("reserved-param", "messages"),
    ]
    assert (
        found[0].message
        == "model `writer`: `params.timeout` is not allowed: synthc sets `timeout` itself on every call"
    )
    assert found[0].hint == "set `timeout` on the model alias, next to `model:`"
    assert found[1].hint is not None and "`output`" in found[1].hint


def test_an_invalid_output_schema_is_reported_where_it_is_wrong() -> None:
    text = spec(
        """
        columns:
          t:
            type: llm
            model: writer
            prompt: x
            output:
              type: object
              properties:
                n: {type: integer, minimum: low}
        """
    )
    diag = one(text, "bad-output-schema")
    assert at(text, diag).startswith("low}")
    assert diag.message.startswith("column `t`: `output.properties.n.minimum` is not valid JSON Schema: ")


@pytest.mark.parametrize(
    ("output", "points_at"),
    [
        ("{type: string}", "string}"),
        ("{type: [object, 'null'], properties: {a: {}}}", "[object"),
        ("{properties: {a: {}}}", "output:"),
        ("{type: object}", "output:"),
        ("{type: object, properties: {}}", "properties:"),
    ],
)
def test_an_output_schema_must_describe_an_object_with_properties(output: str, points_at: str) -> None:
    text = spec(f"columns:\n  t: {{type: llm, model: writer, prompt: x, output: {output}}}\n")
    assert at(text, one(text, "bad-output-schema")).startswith(points_at)


def test_a_source_schema_is_checked_like_an_output() -> None:
    text = spec(
        """
        source:
          type: llm
          model: writer
          prompt: x
          schema: {type: array, items: {type: string}}
        """
    )
    diag = one(text, "bad-output-schema")
    assert at(text, diag).startswith("array")
    assert diag.message.startswith("source: `schema` must describe an object")


def test_a_source_prompt_sees_vars_only() -> None:
    text = spec(
        """
        vars: {shop: Velo}
        source:
          type: llm
          model: writr
          prompt: "Customers of {{ shop }} in {{ city }}"
          system: "{{ shp }}"
          schema: {type: object, properties: {name: {type: string}}}
        columns:
          city: {type: person, field: city}
        """
    )
    found = diags(text)
    assert [d.code for d in found] == ["unknown-model", "unknown-reference", "unknown-reference"]
    assert "records are written before any column" in found[1].message
    assert at(text, found[1]).startswith("city }}")
    assert found[2].message == "source: the system prompt uses `shp`, which is not a var"
    assert found[2].hint == "did you mean `shop`?"


def test_a_column_named_like_a_record_field_is_a_duplicate() -> None:
    text = spec(
        """
        source:
          type: llm
          model: writer
          prompt: x
          schema: {type: object, properties: {name: {type: string}, kind: {type: string}}}
        columns:
          kind: {type: category, values: [a]}
          label: {type: template, template: "{{ name }} {{ kind }}"}
          grade: {type: category, given: name, values: {a: [x]}}
        """
    )
    found = diags(text)
    assert [d.code for d in found] == ["duplicate-column", "given-mismatch"]
    assert at(text, found[0]).startswith("kind:")
    assert "field of the source's records" in found[1].message


def test_several_mistakes_in_models_columns_and_source_are_all_reported() -> None:
    text = spec(
        """
        vars: {tone: "${TONE}"}
        source:
          type: llm
          model: writer
          prompt: x
          per_call: 500
          schema: {type: object, properties: {name: {type: string}}}
        columns:
          body: {type: llm, model: judge, prompt: "{{ nam }}", params: {stream: true}}
          sum: {type: llm, model: nobody, prompt: "{{ body }}", output: {type: string}}
        """,
        models="""
        models:
          writer: {model: fake/w, concurrency: 0}
          judge: {model: fake/j, params: {api_key: x}}
        """,
    )
    assert [d.code for d in diags(text)] == [
        "out-of-range",
        "reserved-param",
        "env-var-not-allowed",
        "out-of-range",
        "unknown-reference",
        "reserved-param",
        "unknown-model",
        "bad-output-schema",
    ]


def test_schema_mistakes_in_models_and_source_are_worded_for_people() -> None:
    text = spec(
        """
        source: {type: llm, model: writer, prompt: x, per_call: 0, schema: {type: object, properties: {bad-name: {}}}}
        columns:
          body: {type: llm, model: writer}
        """,
        models="""
        models:
          writer: {model: fake/w, concurency: 4, timeout: 0}
        """,
    )
    messages = [(d.code, d.message, d.hint) for d in diags(text)]
    assert messages == [
        (
            "unknown-key",
            "model `writer`: unknown key `concurency` — did you mean `concurrency`?",
            messages[0][2],
        ),
        ("out-of-range", "model `writer`: `timeout` must be greater than 0, got 0", None),
        ("out-of-range", "source: `per_call` must be between 1 and 100, got 0", None),
        (
            "bad-column-name",
            "source: `bad-name` is not a valid column name",
            "a column name starts with a letter or `_` and has only letters, digits and `_`",
        ),
        ("missing-key", "column `body`: missing key `prompt`", "an `llm` column needs `model` and `prompt`"),
    ]


def test_non_finite_numbers_in_params_are_refused_not_crashed_on() -> None:
    text = spec("columns:\n  b: {type: llm, model: writer, prompt: x, params: {temperature: .nan}}\n")
    diag = one(text, "bad-value")
    assert at(text, diag).startswith(".nan")
    with pytest.raises(SpecError):
        compile_source(text)


# --------------------------------------------------------------------------- imports


def test_check_of_an_llm_spec_imports_neither_litellm_nor_polars(tmp_path: Path) -> None:
    path = tmp_path / "llm.yaml"
    path.write_text(
        spec(
            """
            source:
              type: llm
              model: writer
              prompt: Invent customers.
              schema: {type: object, properties: {name: {type: string}}}
            columns:
              body: {type: llm, model: writer, prompt: "Write to {{ name }}", output: {type: object, properties: {a: {}}}}
            """
        ),
        encoding="utf-8",
    )
    code = (
        "import sys\n"
        "from synthc.cli import run\n"
        f"assert run(['check', {str(path)!r}]) == 0\n"
        "heavy = ('litellm', 'openai', 'polars', 'numpy')\n"
        "print('loaded:' + ','.join(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    env = {"SYNTHC_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded:"
