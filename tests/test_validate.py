"""Validation of a project: every error kind with its file:line:col, all at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_module

from trek_tasks.errors import BadInput, ManyErrors
from trek_tasks.project import Project
from trek_tasks.validate import (
    validate_para,
    validate_project,
    validation_inputs,
    write_validated,
)

# The data files of the walkthrough's example project (SPEC 2), verbatim but for
# trailing blanks and the manifest's tabs: it must validate as it is.
REFERENCE = {
    "manifest.json": """\
{
  "entry": "src/graph.yml"
}
""",
    "packages.json": """\
{
    "packages": {
        "blckssettags": "==0.3.0",
        "notification": "==0.5.0"
    }
}
""",
    ".trek/config.json": """\
{
    "marvin_url": "",
    "marvin_JWT": "",
    "marvin_secret": "",
    "router_port": 5000,
    "action_timeout": 30,
    "input_data_path": "inputs/data.yml",
    "input_event_path": "inputs/event.yml",
    "local_inventory_file": "",
    "envs": {
        "BLCKS_DEBUG_LOG_MODE": "table",
        "BLCKS_DEBUG_LOG_TABLE_WIDTH": 100,
        "BLCKS_DEBUG_LOG_FIELDS": "data",
        "BLCKS_DEBUG_LOG_FORMAT": "{message} => inputParams: {data[inputParamsStr]}"
    }
}
""",
    "inputs/data.yml": """\
# Created by trek CLI
4-5:
  bot_infos.0:
    type: string
    value: '{input your chatbot id}' # 此欄位為 chatbot id，請依 marvin 平台設置
""",
    "inputs/event.yml": """\
# Created by trek CLI
""",
    "src/graph.yml": """\
$schema: 'http://json-schema.pentium.network/marvin-workflows/0.1/schema'
graph:
  metadata:
    version: 0.1.0
    title: Redis monitor
    templateId: host.detect.redis
    description: "Redis monitor"
    tags: []
    author: trek
  nodes:
    - metadata:
        sources: []
        type: trigger
        title: trigger
        description: ''
      id: '0'
    - metadata:
        type: terminator
        title: terminator
        description: ''
      id: '1'
    - metadata:
        type: action
        title: 'Monitor redis'
        description: ''
        script:
          id: detectredis
      id: '2'
    - metadata:
        type: action
        title: 'Tag host'
        description: ''
        script:
          id: blckssettags
      id: '3'
    - metadata:
        type: selector
        title: selector
      id: '4'
    - metadata:
        type: action
        title: 'Notify'
        description: ''
        script:
          id: notification
      id: '5'
  edges:
    - source: '0'
      target: '2'
      metadata:
        binding:
        - property: tag_name
          value: 'redis:unreachable'
          type: 'string'
    - source: '2'
      target: '3'
      metadata:
        binding:
        - property: name
          value: 'redis:unreachable'
          type: 'string'
        - property: tagged
          value: true
          type: 'boolean'
        - property: asset_type
          value: server
          type: 'string'
        - property: ids
          value: '{{ 2.fail_hosts[].id }}'
          type: 'array'
    - source: '3'
      target: '4'
    - source: '4'
      target: '5'
      metadata:
        filters:
          property: nodes.2.fail_hosts_count
          operator: '>'
          value: 0
        binding:
        - property: str_message
          value: 'The following host redis connection fail: {{ 2.fail_hosts }}'
          type: 'string'
    - source: '4'
      target: '1'
      metadata:
        filters:
          property: nodes.2.fail_hosts_count
          operator: '<='
          value: 0
    - source: '5'
      target: '1'
""",
    "src/blcks/detectredis/handler/handler.py": "# the script's code (its kind's main file)\n",
    "src/blcks/detectredis/detectredis.para": """\
---
id: detectredis
schemaVersion: '0.2'
name: Redis connection monitor
title: Redis connection monitor
version: "0.1.0"
description: "Detect host redis connection."
namespace: network.pentium
assets:
  - HOST

inputs:
  tag_name:
    name: Tag name
    title: Tag name
    type: string

required:
  - tag_name

outputs:
  fail_hosts_count:
    name: Fail host count
    title: Fail host count
    type: integer
    description: ""
  fail_hosts:
    name: Fail result
    title: Fail result
    type: array
    description: "Fail result"
    items:
      type: object
      properties:
        id:
          name: Host id
          title: Host id
          type: string
          description: Host id
          examples:
          - S-ajvw371v9
        name:
          name: Host namne
          title: Host namne
          description: Host namne
          type: string
          examples:
          - OS-Ubuntu18.04
        ip:
          name: Host ip
          title: Host ip
          description: Host ip
          type: string
          examples:
          - 1.1.1.1

""",
    "trek_packages/blckssettags/blckssettags.para": """\
id: blckssettags
schemaVersion: '0.2'
version: '0.3.0'
name: 资产设定标签
title: 资产设定标签
description: 输入 标签名、 新增/移除, 资产类别, 资产 id， 将选定资产新增或移除指定标签。
namespace: network.pentium
assets:
- DOMAIN
- CDN
- HOST

inputs:
  name:
    name: 标签名称
    title: 标签名称
    description: 标签名称
    type: string
  tagged:
    name: 新增/移除
    title: 新增/移除
    description: 新增/移除 (true/false) 标签
    type: boolean
    enum:
      - 1
      - 0
    enumNames:
      - 新增
      - 移除
  asset_type:
    name: 资产类别
    title: 资产类别
    description: 指定资产的类别
    type: string
    enum:
      - SERVER
      - DOMAIN
      - CDN
    enumNames:
      - 服务器
      - 域名
      - CDN
  ids:
    name: id 列表
    description: 请输入欲添加标签之 id，一行一个 (i.e D-aa123)
    $ref: pn_sp_textarea_array

required:
  - name
  - tagged
  - asset_type
  - ids

outputs:
  result:
    type: string
""",
    "trek_packages/notification/notification.para": """\
id: notification
schemaVersion: '0.2'
version: '0.5.0'
name: 传送讯息至指定频道
title: 传送讯息至指定频道
description: 選擇 bot 配對，傳送訊息至指定頻道
namespace: network.pentium
assets:
- HOST
inputs:
  bot_infos:
    $ref: pn_ids_chatpair
  str_message:
    name: Message context.
    title: Message context.
    description: The message used to send to the specified channel.
    $ref: pn_sp_textarea_str
required:
- str_message
outputs:
  status:
    description: The status of sending message.
    type: string
    enum:
    - success
    - failure
    - no data
    enumNames:
    - 成功
    - 失败
    - 无资讯
    example: success
""",
}


@pytest.fixture
def ref(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The reference project in a temp folder, which is also the current directory."""
    root = tmp_path / "host.detect.redis"
    for name, text in REFERENCE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.chdir(root)
    return root


def edit(name: str, old: str, new: str) -> None:
    """Replace ``old`` (which must occur exactly once) in a project file."""
    path = Path(name)
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {name}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def errors() -> list[str]:
    with pytest.raises(ManyErrors) as info:
        validate_project(Project.load(Path.cwd()))
    found = [str(e) for e in info.value.errors]
    assert str(info.value) == "\n".join(found)
    assert all(isinstance(e, BadInput) and e.where for e in info.value.errors)
    return found


def warnings() -> list[str]:
    return validate_project(Project.load(Path.cwd()))


REFERENCE_WARNINGS = [
    "trek_packages/blckssettags/blckssettags.para:25:9: "
    "input 'tagged': enum value 1 is not a boolean (read as true)",
    "trek_packages/blckssettags/blckssettags.para:26:9: "
    "input 'tagged': enum value 0 is not a boolean (read as false)",
    "trek_packages/notification/notification.para:32:5: "
    "unknown key 'example' in output 'status'; did you mean 'examples'?",
]


def test_reference_project_validates_with_warnings_about_installed_paras(ref: Path) -> None:
    assert warnings() == REFERENCE_WARNINGS


# --- src/graph.yml ------------------------------------------------------------------

G = "src/graph.yml"
NOTIFY_NODE = "      id: '5'\n"
LAST_EDGE = "    - source: '5'\n      target: '1'\n"

GRAPH_CASES = {
    "binding type not a type": (
        [(G, "value: true\n          type: 'boolean'", "value: true\n          type: 'bool'")],
        [
            "src/graph.yml:64:17: edge 2->3 binding 'tagged': 'type' must be one of string, "
            "integer, number, boolean, array, object, not 'bool'; did you mean 'boolean'?"
        ],
    ),
    "unknown key in node metadata": (
        [
            (
                G,
                "        script:\n          id: notification",
                "        scrpt:\n          id: notification",
            )
        ],
        [
            "src/graph.yml:41:9: node 5 is an action and needs 'script: {id: <script id>}'",
            "src/graph.yml:44:9: node 5: unknown key 'scrpt' in 'metadata'; did you mean 'script'?",
        ],
    ),
    "node id not quoted": (
        [(G, "      id: '4'", "      id: 4")],
        ["src/graph.yml:39:11: node 4: 'id' must be a node id: digits in quotes, e.g. '3'"],
    ),
    "node type missing": (
        [(G, "        type: selector\n", "")],
        ["src/graph.yml:37:9: node 4: 'metadata' needs 'type'"],
    ),
    "graph version not a string": (
        [(G, "version: 0.1.0", "version: 0.1")],
        ["src/graph.yml:4:14: 'version' must be a string, not a number; put it in quotes"],
    ),
    "graph version not PEP 440": (
        [(G, "version: 0.1.0", "version: first")],
        ["src/graph.yml:4:14: version 'first' is not a valid version (PEP 440), e.g. '0.1.0'"],
    ),
    "templateId with a space": (
        [(G, "templateId: host.detect.redis", "templateId: host detect")],
        [
            "src/graph.yml:6:17: 'templateId' must be letters, digits, '.', '_' or '-' "
            "(it names the packed zip), e.g. 'host.detect.redis'"
        ],
    ),
    "missing nodes": (
        [(G, "  nodes:\n", "  nodez:\n")],
        [
            "src/graph.yml:3:3: 'graph' needs 'nodes'",
            "src/graph.yml:10:3: unknown key 'nodez' in 'graph'; did you mean 'nodes'?",
        ],
    ),
    "duplicate node id": (
        [(G, NOTIFY_NODE, "      id: '3'\n")],
        [
            "src/graph.yml:46:11: node id '3' is already used at src/graph.yml:35:11; "
            "give each node its own id",
            "src/graph.yml:74:15: edge 4->5: target node '5' does not exist (nodes: 0, 1, 2, 3, 4)",
            "src/graph.yml:91:15: edge 5->1: source node '5' does not exist (nodes: 0, 1, 2, 3, 4)",
        ],
    ),
    "edge to a missing node": (
        [
            (
                G,
                LAST_EDGE,
                "    - source: '5'\n      target: '1'\n    - source: '2'\n      target: '9'\n",
            )
        ],
        [
            "src/graph.yml:94:15: edge 2->9: target node '9' does not exist "
            "(nodes: 0, 1, 2, 3, 4, 5)"
        ],
    ),
    "duplicate edge": (
        [(G, LAST_EDGE, LAST_EDGE + LAST_EDGE)],
        ["src/graph.yml:93:7: edge 5->1 is already defined at src/graph.yml:91:7; merge the two"],
    ),
    "cycle": (
        [(G, LAST_EDGE, LAST_EDGE + "    - source: '3'\n      target: '2'\n")],
        [
            "src/graph.yml:94:15: edges 2 -> 3 -> 2 form a cycle; a workflow may not loop, "
            "remove one of these edges"
        ],
    ),
    "second trigger and an edge into it": (
        [
            (G, "        type: selector", "        type: trigger"),
            (G, LAST_EDGE, LAST_EDGE + "    - source: '5'\n      target: '0'\n"),
        ],
        [
            "src/graph.yml:37:15: node 4 is a second trigger (node 0 is the first); "
            "a workflow has exactly one",
            "src/graph.yml:72:15: edge 3->4: nothing may lead into the trigger (node 4)",
            "src/graph.yml:94:15: edge 5->0: nothing may lead into the trigger (node 0)",
            "src/graph.yml:94:15: edges 0 -> 2 -> 3 -> 4 -> 5 -> 0 form a cycle; "
            "a workflow may not loop, remove one of these edges",
        ],
    ),
    "no trigger": (
        [(G, "        sources: []\n        type: trigger", "        type: selector")],
        ["src/graph.yml:11:5: the workflow has no trigger; add a node of type trigger"],
    ),
    "no terminator, edges out of it": (
        [(G, "        type: terminator", "        type: selector")],
        [
            "src/graph.yml:11:5: the workflow has no terminator; add a node of type "
            "terminator and connect the last steps to it"
        ],
    ),
    "terminator unreachable": (
        [
            (G, "    - source: '4'\n      target: '1'\n", "    - source: '4'\n      target: '5'\n"),
            (G, LAST_EDGE, ""),
        ],
        [
            "src/graph.yml:21:11: terminator 1 cannot be reached from the trigger (node 0); "
            "connect a path to it",
            "src/graph.yml:84:7: edge 4->5 is already defined at src/graph.yml:73:7; merge the two",
        ],
    ),
    "edge out of the terminator": (
        [(G, LAST_EDGE, LAST_EDGE + "    - source: '1'\n      target: '5'\n")],
        [
            "src/graph.yml:93:15: edge 1->5: node 1 is a terminator and ends the run; "
            "it has no outgoing edges",
            "src/graph.yml:94:15: edges 5 -> 1 -> 5 form a cycle; a workflow may not loop, "
            "remove one of these edges",
        ],
    ),
    "scripts on the wrong node types, sources on an action": (
        [
            (G, "        title: selector\n", "        title: selector\n        script: {id: x}\n"),
            (G, "        title: 'Notify'\n", "        title: 'Notify'\n        sources: []\n"),
        ],
        [
            "src/graph.yml:39:9: node 4 is a selector and runs no script; remove 'script'",
            "src/graph.yml:44:9: node 5 is an action; only the trigger has 'sources'",
        ],
    ),
    "bad cron and event sources": (
        [
            (
                G,
                "        sources: []",
                "        sources:\n"
                "        - {type: cron, data: '*/60 * * *'}\n"
                "        - {type: cron, data: '0 25 * * *'}\n"
                "        - {type: cron, data: '0 3 * JAN-MAR MON::Asia/Taipe'}\n"
                "        - {type: cron, data: '*/5 * * * *::Asia/Taipei'}\n"
                "        - {type: event, data: 'network.pentium'}\n"
                "        - {type: event, data: 'network.pentium::host.down::'}\n"
                "        - {type: manual}",
            )
        ],
        [
            "src/graph.yml:13:30: cron '*/60 * * *' has 4 field(s); write 5 "
            "(minute hour day-of-month month day-of-week), e.g. '*/60 * * * *'",
            "src/graph.yml:14:30: cron hour '25': '25' is not in 0-23",
            "src/graph.yml:15:30: unknown timezone 'Asia/Taipe'; did you mean 'Asia/Taipei'?",
            "src/graph.yml:17:31: event source 'network.pentium' must be "
            "'<namespace>::<event_id>' or '<namespace>::<event_id>::<version>', "
            "e.g. 'network.pentium::host.down::1'",
        ],
    ),
    "script not installed": (
        [
            ("packages.json", '"==0.5.0"', '"==0.5.0", "mailer": ""'),
            (G, "id: notification", "id: mailer"),
        ],
        ["src/graph.yml:45:15: node 5: script 'mailer' is not installed; run `trek install`"],
    ),
    "unknown script": (
        [(G, "id: notification", "id: notifcation")],
        [
            "src/graph.yml:45:15: node 5: unknown script 'notifcation' (did you mean "
            "'notification'?); create it with `trek createblcks notifcation` or install it "
            "with `trek install notifcation`"
        ],
    ),
    "binding an input the para does not have": (
        [(G, "property: ids", "property: idz")],
        [
            "src/graph.yml:35:11: node 3 (blckssettags): required input 'ids' is not bound; "
            "bind it on an edge into node 3 or set it in inputs/data.yml",
            "src/graph.yml:68:21: edge 2->3 binds 'idz', but blckssettags has no such input; "
            "did you mean 'ids'?",
        ],
    ),
    "binding the same input twice": (
        [
            (
                G,
                "        - property: asset_type",
                "        - property: name\n          value: x\n          type: string\n"
                "        - property: asset_type",
            )
        ],
        ["src/graph.yml:65:21: edge 2->3 binds 'name' twice"],
    ),
    "binding below a string input ($ref resolved)": (
        [(G, "property: str_message", "property: str_message.text")],
        [
            "src/graph.yml:81:21: edge 4->5 binds 'str_message.text', but 'str_message' is "
            "a string; it has no 'text'"
        ],
    ),
    "literal that cannot be converted": (
        [(G, "value: true\n          type: 'boolean'", "value: maybe\n          type: 'boolean'")],
        [
            "src/graph.yml:63:18: edge 2->3 binding 'tagged': cannot convert 'maybe' to "
            "boolean: use true/false, yes/no or 1/0"
        ],
    ),
    "literal that does not fit the input type": (
        [(G, "value: true\n          type: 'boolean'", "value: 'abc'\n          type: 'string'")],
        [
            "src/graph.yml:63:18: edge 2->3 binding 'tagged': cannot convert 'abc' to "
            "boolean: use true/false, yes/no or 1/0, which blckssettags input 'tagged' needs"
        ],
    ),
    "literal outside the enum": (
        [(G, "value: server", "value: servers")],
        [
            "src/graph.yml:66:18: edge 2->3 binding 'asset_type': 'servers' is not one of "
            "SERVER, DOMAIN, CDN (blckssettags input 'asset_type'); did you mean 'SERVER'?"
        ],
    ),
    "templates naming nodes that have not run": (
        [(G, "{{ 2.fail_hosts }}", "{{ 5.fail_hosts }} {{ 8.x }}")],
        [
            "src/graph.yml:82:18: edge 4->5 binding 'str_message': node 5 has not run "
            "before node 5 (usable: 0, 2, 3, 4)",
            "src/graph.yml:82:18: edge 4->5 binding 'str_message': node '8' does not exist",
        ],
    ),
    "broken templates": (
        [(G, "{{ 2.fail_hosts[].id }}", "{{ 2.fail_hosts[.id }} {{ 2.x")],
        [
            "src/graph.yml:69:18: edge 2->3 binding 'ids': template '{{ 2.fail_hosts[.id }}': "
            "invalid JMESPath expression 'fail_hosts[.id': unexpected '.'",
            "src/graph.yml:69:18: edge 2->3 binding 'ids': '{{ 2.x' opens a template but "
            "never closes it; end it with '}}'",
        ],
    ),
    "filters: unknown operator, bad property, node that has not run, extra key": (
        [
            (G, "operator: '>'", "operator: 'gt'"),
            (
                G,
                "property: nodes.2.fail_hosts_count\n          operator: '<='\n          value: 0",
                "or:\n          - {property: nodes.5.status, operator: '==', value: x, valeu: 1}\n"
                "          - {property: 'nodes.2.[', operator: '<='}\n"
                "          value: 0",
            ),
        ],
        [
            "src/graph.yml:78:21: edge 4->5: unknown operator 'gt'; use one of: ==, !=, >, "
            ">=, <, <=, sizeEquals, sizeNotEquals, sizeLessThan, sizeLessThanEquals, "
            "sizeGreaterThan, sizeGreaterThanEquals, lengthEquals, lengthNotEquals, "
            "lengthLessThan, lengthLessThanEquals, lengthGreaterThan, "
            "lengthGreaterThanEquals, have, notHave, regEx, ipAddress, notIpAddress, "
            "containObjectAll",
            "src/graph.yml:89:24: edge 4->1: filter property 'nodes.5.status': node 5 has "
            "not run when node 4 finishes (usable: 0, 2, 3, 4)",
            "src/graph.yml:89:66: edge 4->1: unknown key 'valeu' in a condition; "
            "a condition has property, operator and value",
            "src/graph.yml:90:24: edge 4->1: property 'nodes.2.[': invalid JMESPath "
            "expression '[': it ends too early",
            "src/graph.yml:91:11: edge 4->1: unknown key 'value' in an 'or' group",
        ],
    ),
    "filters that are not a mapping": (
        [
            (
                G,
                "filters:\n          property: nodes.2.fail_hosts_count\n"
                "          operator: '<='\n          value: 0",
                "filters: [x]",
            )
        ],
        [
            "src/graph.yml:87:18: edge 4->1: 'filters' must be a condition {property, "
            "operator, value} or a group {and: [...]} / {or: [...]}"
        ],
    ),
}


@pytest.mark.parametrize("edits, expected", GRAPH_CASES.values(), ids=GRAPH_CASES.keys())
def test_graph_errors(ref: Path, edits: list[tuple[str, str, str]], expected: list[str]) -> None:
    for name, old, new in edits:
        edit(name, old, new)
    assert errors() == expected


def test_unreachable_node_and_undeclared_output_are_warnings(ref: Path) -> None:
    edit(G, LAST_EDGE, LAST_EDGE.replace("'5'", "'9'"))
    edit(G, NOTIFY_NODE, NOTIFY_NODE + "    - metadata: {type: selector}\n      id: '9'\n")
    edit(G, "{{ 2.fail_hosts }}", "{{ 2.fail_host }}")
    assert warnings() == [
        "src/graph.yml:48:11: node 9 cannot be reached from the trigger, so it never runs",
        "src/graph.yml:84:18: edge 4->5 binding 'str_message': detectredis (node 2) has no "
        "output 'fail_host'; did you mean 'fail_hosts'?",
        *REFERENCE_WARNINGS,
    ]


def test_required_input_set_in_data_yml_or_with_a_default_is_bound(ref: Path) -> None:
    edit(
        G,
        "        - property: name\n"
        "          value: 'redis:unreachable'\n          type: 'string'\n",
        "",
    )
    edit("inputs/data.yml", "4-5:", "2-3:\n  name: {type: string, value: redis}\n4-5:")
    edit(
        G,
        "        - property: tag_name\n"
        "          value: 'redis:unreachable'\n          type: 'string'\n",
        "",
    )
    edit(
        OWN,
        "    title: Tag name\n    type: string\n",
        "    title: Tag name\n    type: string\n    default: redis\n",
    )
    assert warnings() == REFERENCE_WARNINGS


def test_a_selector_filter_may_name_the_selector_itself(ref: Path) -> None:
    edit(
        G,
        "property: nodes.2.fail_hosts_count\n          operator: '>'",
        "property: nodes.4.n\n          operator: '>'",
    )
    assert warnings() == REFERENCE_WARNINGS


# --- paras --------------------------------------------------------------------------

OWN = "src/blcks/detectredis/detectredis.para"
TAGS = "trek_packages/blckssettags/blckssettags.para"


def test_own_para_errors(ref: Path) -> None:
    edit(OWN, 'version: "0.1.0"', 'version: "first"')
    edit(
        OWN,
        "    title: Tag name\n    type: string\n",
        "    title: Tag name\n    type: string\n    enum: [1]\n    exampel: x\n",
    )
    edit(OWN, "  - tag_name\n", "  - tag_name\n  - tagname\n")
    edit(OWN, "    type: integer\n", "    $ref: pn_int\n")
    assert errors() == [
        "src/graph.yml:53:18: edge 0->2 binding 'tag_name': 'redis:unreachable' is not one of "
        "1 (detectredis input 'tag_name')",
        "src/blcks/detectredis/detectredis.para:6:10: version 'first' is not a valid "
        "version (PEP 440), e.g. '0.1.0'",
        "src/blcks/detectredis/detectredis.para:17:12: input 'tag_name': enum value 1 is not "
        "a string",
        "src/blcks/detectredis/detectredis.para:18:5: unknown key 'exampel' in input "
        "'tag_name'; did you mean 'examples'?",
        "src/blcks/detectredis/detectredis.para:22:5: required input 'tagname' is not among "
        "the inputs; did you mean 'tag_name'?",
        "src/blcks/detectredis/detectredis.para:28:11: output 'fail_hosts_count': '$ref' must "
        "be one of pn_ids_host, pn_ids_domain, pn_ids_cdn, pn_ids_script, pn_ids_chatpair, "
        "pn_id_keypair, pn_sp_password, pn_sp_textarea_str, pn_sp_textarea_array, "
        "pn_sp_change_password, pn_sp_cdn_credential, pn_sp_nsrecord, pn_sp_origins, "
        "not 'pn_int'; did you mean 'pn_ids_cdn'?",
    ]


def test_an_own_script_without_its_main_file_is_an_error_naming_the_fix(ref: Path) -> None:
    (ref / "src/blcks/detectredis/handler/handler.py").unlink()
    result = trek("validate", cwd=ref)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "trek: error: src/blcks/detectredis: blcks script 'detectredis' has no "
        "handler/handler.py; run `trek initblcks -p src/blcks/detectredis`\n"
    )


def test_para_id_must_match_its_folder(ref: Path) -> None:
    edit(OWN, "id: detectredis", "id: detect_redis")
    assert errors() == [
        "src/blcks/detectredis/detectredis.para:2:5: id 'detect_redis' must equal the folder "
        "name 'detectredis'; rename one of them"
    ]


def test_side_effects_in_a_para_must_be_true_or_false(ref: Path) -> None:
    edit(OWN, "namespace: network.pentium\n", "namespace: network.pentium\nsideEffects: true\n")
    validate_project(Project.load(Path.cwd()))
    edit(OWN, "sideEffects: true\n", "sideEffects: always\n")
    assert errors() == [
        "src/blcks/detectredis/detectredis.para:9:14: 'sideEffects' must be true or false"
    ]


def test_para_without_type_or_ref(ref: Path) -> None:
    edit(OWN, "    title: Tag name\n    type: string\n", "    title: Tag name\n")
    assert errors() == [
        "src/blcks/detectredis/detectredis.para:14:5: input 'tag_name' needs a 'type' "
        "(string, integer, number, boolean, object, array) or a '$ref' to a built-in type "
        "such as pn_ids_host"
    ]


def test_installed_para_quirks_are_warnings_but_broken_inputs_are_errors(ref: Path) -> None:
    edit(TAGS, "    type: string\n    enum:", "    type: string\n    default: 3\n    enum:")
    edit(TAGS, "  - name\n", "  - name\n  - nme\n")
    assert warnings() == [
        REFERENCE_WARNINGS[0],
        REFERENCE_WARNINGS[1],
        "trek_packages/blckssettags/blckssettags.para:35:14: input 'asset_type': default 3 "
        "is not a string",
        "trek_packages/blckssettags/blckssettags.para:51:5: required input 'nme' is not among "
        "the inputs; did you mean 'name'?",
        REFERENCE_WARNINGS[2],
    ]
    edit(TAGS, "inputs:\n  name:", "inputs: 3\nold_inputs:\n  name:")
    assert errors() == [
        "trek_packages/blckssettags/blckssettags.para:13:9: 'inputs' must be a mapping, not "
        "a number"
    ]


def test_validate_para_alone(ref: Path) -> None:
    problems, notes = validate_para(Path(TAGS))
    assert problems == [] and notes == REFERENCE_WARNINGS[:2]
    problems, notes = validate_para(Path(TAGS), own=True)
    assert [str(p) for p in problems] == REFERENCE_WARNINGS[:2] and notes == []
    Path(TAGS).write_text("id: [blckssettags\n", encoding="utf-8")
    problems, notes = validate_para(Path(TAGS))
    assert [str(p) for p in problems] == [
        "trek_packages/blckssettags/blckssettags.para:2:1: invalid YAML: "
        "did not find expected ',' or ']'"
    ]


# --- inputs/, packages, lock, config ------------------------------------------------


def test_data_yml_errors(ref: Path) -> None:
    Path("inputs/data.yml").write_text(
        "4-6:\n"
        "  x: {type: string, value: a}\n"
        "4-5:\n"
        "  bot_info.0: {type: string, value: a}\n"
        "  bot_infos.x: {type: string, value: a}\n"
        "  str_message: {type: integer, value: abc}\n"
        "edge-0-2:\n"
        "  tag_name: {type: string}\n",
        encoding="utf-8",
    )
    assert errors() == [
        "inputs/data.yml:1:1: edge 4-6 does not exist in src/graph.yml; did you mean '4-5'?",
        "inputs/data.yml:4:3: edge 4-5 binds 'bot_info', but notification has no such input; "
        "did you mean 'bot_infos'?",
        "inputs/data.yml:5:3: edge 4-5 binds 'bot_infos.x', but 'bot_infos' is a list; index "
        "it with a number, e.g. 'bot_infos.0'",
        "inputs/data.yml:6:39: edge 4-5 property 'str_message': cannot convert 'abc' to "
        "integer: it is not a number",
        "inputs/data.yml:7:1: key 'edge-0-2' must name an edge as '<source>-<target>', e.g. '4-5'",
        "inputs/data.yml:8:13: edge edge-0-2 property 'tag_name' needs 'value'",
    ]


def test_event_yml_must_be_a_mapping(ref: Path) -> None:
    Path("inputs/event.yml").write_text("- a\n", encoding="utf-8")
    assert errors() == [
        "inputs/event.yml:1:1: the file must be a mapping of the event's fields (or empty)"
    ]


def test_packages_lock_and_config_errors(ref: Path) -> None:
    Path("packages.json").write_text(
        '{"packages": {"notification": "=0.5", "blckssettags": "==0.3.0",\n'
        ' "mail": "https://example.com/mail.zip", "x y": 1}}\n',
        encoding="utf-8",
    )
    Path("packages.lock.json").write_text(
        '{"version": 2,\n "packages": {"notification": {"version": "0.5.0", "sha256": "abc", '
        '"source": "s"}}}\n',
        encoding="utf-8",
    )
    Path(".trek/config.json").write_text(
        '{"routerport": 5000,\n "router_port": 70000,\n "runtime": "dockr",\n'
        ' "envs": {"A": [1]},\n "marvin_url": "marvin",\n "action_timeout": ""}\n',
        encoding="utf-8",
    )
    assert errors() == [
        "packages.json:1:31: package 'notification': '=0.5' is not a version specifier; "
        "write e.g. '==0.5.0', '>=0.5,<1', '' (the newest), a URL or a zip path",
        "packages.json:2:42: key 'x y' is not a script id (letters, digits, '.', '_' or '-')",
        "packages.json:2:49: package 'x y' must be a version specifier such as '==0.5.0' "
        "(or '' for the newest), a URL or a zip path",
        "packages.lock.json:1:13: 'version' must be 1; delete packages.lock.json and run "
        "`trek install` to re-create it",
        "packages.lock.json:2:62: package 'notification': 'sha256' must be 64 lowercase hex "
        "digits; delete packages.lock.json and run `trek install` to re-create it",
        ".trek/config.json:1:2: unknown key 'routerport'; did you mean 'router_port'?",
        ".trek/config.json:2:17: 'router_port' must be a port number from 1 to 65535, "
        "or 0 for any free port",
        ".trek/config.json:3:13: 'runtime' must be one of local, docker, not 'dockr'; "
        "did you mean 'docker'?",
        ".trek/config.json:4:16: 'A' must be a string, a number or a boolean (it becomes an "
        "environment variable)",
        ".trek/config.json:5:16: 'marvin_url' must be an http(s) URL such as "
        "'https://marvin.example.com'",
    ]


def test_malformed_yaml_is_reported_with_the_other_errors(ref: Path) -> None:
    Path("inputs/data.yml").write_text("4-5: [\n  bot_infos.0: {type: string}\n")
    Path("inputs/event.yml").write_text("a: [\n")
    edit(G, "id: notification", "id: notifcation")
    assert errors() == [
        "src/graph.yml:45:15: node 5: unknown script 'notifcation' (did you mean "
        "'notification'?); create it with `trek createblcks notifcation` or install it "
        "with `trek install notifcation`",
        "inputs/data.yml:3:1: invalid YAML: did not find expected ',' or ']'",
        "inputs/event.yml:2:1: invalid YAML: did not find expected node content",
    ]


def test_independent_errors_are_all_reported(ref: Path) -> None:
    edit(G, "id: notification", "id: notifcation")
    edit(OWN, 'version: "0.1.0"', 'version: "0.1.0.x"')
    edit(".trek/config.json", '"router_port": 5000', '"router_port": "5000"')
    assert errors() == [
        "src/graph.yml:45:15: node 5: unknown script 'notifcation' (did you mean "
        "'notification'?); create it with `trek createblcks notifcation` or install it "
        "with `trek install notifcation`",
        "src/blcks/detectredis/detectredis.para:6:10: version '0.1.0.x' is not a valid "
        "version (PEP 440), e.g. '0.1.0'",
        ".trek/config.json:5:20: 'router_port' must be a port number from 1 to 65535, "
        "or 0 for any free port",
    ]


# --- validation_inputs, write_validated, the command --------------------------------


def test_validation_inputs_lists_what_validation_reads(ref: Path) -> None:
    (ref / "trek_packages" / "unused").mkdir()
    (ref / "trek_packages" / "unused" / "unused.para").write_text("id: unused\n")
    inputs = validation_inputs(Project.load(ref))
    assert [p.relative_to(ref).as_posix() for p in inputs] == [
        "src/graph.yml",
        "manifest.json",
        "packages.json",
        "src/blcks/detectredis/detectredis.para",
        "trek_packages/blckssettags/blckssettags.para",
        "trek_packages/notification/notification.para",
        "inputs/data.yml",
        "inputs/event.yml",
        ".trek/config.json",
    ]
    (ref / "packages.lock.json").write_text('{"version": 1, "packages": {}}\n')
    assert ref / "packages.lock.json" in validation_inputs(Project.load(ref))


def test_write_validated_records_warnings(ref: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from trek_tasks import __version__
    from trek_tasks.events import attached
    from trek_tasks.reporter import Terminal

    target = ref / ".trek" / "validated.json"
    lines: list[str] = []
    with attached(Terminal(lines.append, lines.append)):  # what a command's reporter prints
        write_validated(Project.load(ref), target)
    assert json.loads(target.read_text()) == {"trek": __version__, "warnings": REFERENCE_WARNINGS}
    assert lines == [f"trek: warning: {w}" for w in REFERENCE_WARNINGS]
    edit(G, "id: notification", "id: notifcation")
    target.unlink()
    with pytest.raises(ManyErrors):
        write_validated(Project.load(ref), target)
    assert not target.exists()


def trek(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_module("trek_tasks", *args, cwd=cwd, timeout=60)


def test_command_ok(ref: Path) -> None:
    result = trek("validate", "-p", str(ref), cwd=ref.parent)
    assert result.returncode == 0
    assert result.stdout == "Valid. [host.detect.redis]\n"
    assert result.stderr.splitlines() == [
        f"trek: warning: host.detect.redis/{w}" for w in REFERENCE_WARNINGS
    ]


def test_cron_zones_come_from_tzdata_not_the_hosts_zone_files(ref: Path) -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(dep.startswith("tzdata") for dep in project["dependencies"])
    edit(
        G,
        "        sources: []",
        "        sources:\n"
        "        - {type: cron, data: '*/5 * * * *::Asia/Taipei'}\n"
        "        - {type: cron, data: '0 3 * * *::Europe/Berln'}",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONTZPATH": str(ref / "no-zones-here")}
    result = subprocess.run(
        [sys.executable, "-m", "trek_tasks", "validate"],
        cwd=ref,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "trek: error: src/graph.yml:14:30: unknown timezone 'Europe/Berln'; "
        "did you mean 'Europe/Berlin'?\n"
    )


def test_command_errors_one_line_each_exit_2(ref: Path) -> None:
    edit(G, "id: notification", "id: notifcation")
    edit(G, "property: ids", "property: idz")
    result = trek("validate", "-p", str(ref), cwd=ref)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "trek: error: src/graph.yml:35:11: node 3 (blckssettags): required input 'ids' is "
        "not bound; bind it on an edge into node 3 or set it in inputs/data.yml",
        "trek: error: src/graph.yml:45:15: node 5: unknown script 'notifcation' (did you "
        "mean 'notification'?); create it with `trek createblcks notifcation` or install it "
        "with `trek install notifcation`",
        "trek: error: src/graph.yml:68:21: edge 2->3 binds 'idz', but blckssettags has no such "
        "input; did you mean 'ids'?",
    ]


def test_command_malformed_graph(ref: Path) -> None:
    edit(G, "  edges:\n", "  edges: [\n")
    result = trek("validate", cwd=ref / "src")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "trek: error: src/graph.yml:48:5: invalid YAML: did not find expected node content\n"
    )
