"""Extra vars a template never reads are worth a warning with "did you mean"; so is an
unknown template name."""

from __future__ import annotations

import pytest
from templating_helpers import WriteTemplate

from control_server.errors import TemplateNotFound
from control_server.template_usage import unused_extra_vars
from control_server.templating import TemplateLibrary

T = """\
{#
description: t
params:
  memory_mib: {type: int, default: 512}
#}
{% set size = disk_gib | default(1) %}
steps:
  - name: s
    facts: {}
  - name: xml
    file: {path: /tmp/x, content: "{{ partial('d.xml.j2') }}"}
"""


@pytest.fixture
def lib(make_lib: WriteTemplate) -> TemplateLibrary:
    return make_lib({"t": T}, {"d.xml.j2": "<d>{{ bridge }}</d>"})


def test_misspelt_param_warns_with_did_you_mean() -> None:
    line = unused_extra_vars(TemplateLibrary(), "launch_instance", ["memory", "name"])
    assert line == (
        "extra vars not used by template launch_instance (neither params nor in its text): "
        "'memory' (did you mean 'memory_mib'?)"
    )


@pytest.mark.parametrize(
    "names",
    [
        ["memory_mib"],  # a param
        ["disk_gib"],  # read by the template text
        ["bridge"],  # read by a partial
        ["ansible_user", "ansible_host", "ansible_become"],  # for the connection
        [],
    ],
)
def test_vars_the_template_reads_do_not_warn(lib: TemplateLibrary, names: list[str]) -> None:
    assert unused_extra_vars(lib, "t", names) is None


def test_each_unused_var_is_named_on_one_line(lib: TemplateLibrary) -> None:
    line = unused_extra_vars(lib, "t", ["memory", "zzz_unrelated", "bridge"])
    assert line is not None and "\n" not in line
    assert line.endswith("'memory' (did you mean 'memory_mib'?), 'zzz_unrelated'")


def test_unknown_template_suggests_the_closest_name() -> None:
    with pytest.raises(TemplateNotFound, match=r"'lanch_instance' not found \(did you mean "
                       r"'launch_instance'\?\)"):
        TemplateLibrary().get("lanch_instance")
    with pytest.raises(TemplateNotFound) as info:
        TemplateLibrary().get("zzzzzz")
    assert "did you mean" not in str(info.value)
