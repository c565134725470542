"""The SAM template is checked against the routing table, and by cfn-lint.

A route added without regenerating ``deploy/template.yaml`` fails here, so the
AWS deployment can never silently miss a consumer.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from lunamail.adapters.queue.sqs import logical_name
from lunamail.domain.messages import registry
from lunamail.entrypoints.aws.feedback import QUEUE as SES_QUEUE
from lunamail.entrypoints.aws.uploads import QUEUE as UPLOADS_QUEUE
from lunamail.runtime.routing import default_router
from tests.support.deploy import deploy_module
from tests.support.sam import sam_transform

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TEMPLATE = DEPLOY / "template.yaml"
PREFIX = "${QueuePrefix}"
LIMIT = 470  # CloudFormation's 500 resources per stack, with room for a few more routes


def resource_id(queue: str) -> str:
    return str(_generator().resource_id(queue))


def _generator() -> ModuleType:
    return deploy_module("generate")


def _load(name: str) -> dict[str, Any]:
    loaded = yaml.load((DEPLOY / name).read_text("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert isinstance(loaded, dict)
    return loaded


def _unimport(node: Any, values: dict[str, Any]) -> Any:
    """``node`` with each imported parameter (or root output reference) replaced by the
    expression of the other stack it stands for."""
    if isinstance(node, list):
        return [_unimport(n, values) for n in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in values:
        return values[node["Ref"]]
    if set(node) == {"Fn::GetAtt"} and tuple(node["Fn::GetAtt"]) in values:
        return values[tuple(node["Fn::GetAtt"])]
    if set(node) == {"Fn::Sub"}:
        sub = node["Fn::Sub"]
        text, mapping = (sub, {}) if isinstance(sub, str) else (sub[0], dict(sub[1]))
        inline = {name: values[name] for name in values if isinstance(name, str)}
        inline |= {name: _unimport(v, values) for name, v in mapping.items()}
        for name, expr in inline.items():
            if "Ref" in expr:
                text = text.replace("${" + name + "}", "${" + expr["Ref"] + "}")
            elif "Fn::GetAtt" in expr:
                text = text.replace("${" + name + "}", "${" + ".".join(expr["Fn::GetAtt"]) + "}")
        return {"Fn::Sub": text}
    return {k: _unimport(v, values) for k, v in node.items()}


def _joined() -> dict[str, Any]:
    """The committed root and nested stacks joined back into one template: every
    parameter a nested stack imports replaced by the output it is passed."""
    root = _load("template.yaml")
    children = {sid: _load(res["Properties"]["TemplateURL"]) for sid, res in root["Resources"].items()}
    outputs = {(sid, f"Outputs.{name}"): out["Value"]
               for sid, child in children.items() for name, out in child.get("Outputs", {}).items()}
    resources: dict[str, Any] = {}
    globs = []
    for sid, nested in root["Resources"].items():
        assert nested["Type"] == "AWS::CloudFormation::Stack"
        child = children[sid]
        passed = nested["Properties"]["Parameters"]
        assert set(passed) == set(child["Parameters"]), sid  # every parameter is given
        values: dict[Any, Any] = {}
        for name, value in passed.items():
            if value == {"Ref": name}:
                assert name in root["Parameters"]
            else:
                values[name] = outputs[tuple(value["Fn::GetAtt"])]
        assert not set(resources) & set(child["Resources"])  # nothing in two stacks
        resources |= _unimport(child["Resources"], values)
        if "Globals" in child:
            globs.append(_unimport(child["Globals"], values))
    assert globs and all(g == globs[0] for g in globs)
    return {
        "Parameters": root["Parameters"],
        "Globals": globs[0],
        "Resources": resources,
        "Outputs": _unimport(root["Outputs"], dict(outputs)),
    }


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return _joined()


def _of_type(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == kind}


def _queue_name(resource: dict[str, Any]) -> str:
    sub = resource["Properties"]["QueueName"]["Fn::Sub"]
    assert sub.startswith(PREFIX)
    return str(sub[len(PREFIX) :])


def test_template_queues_are_exactly_the_routed_queues(doc: dict[str, Any]) -> None:
    routed = {*default_router().queues(), SES_QUEUE, UPLOADS_QUEUE}
    queues = _of_type(doc, "AWS::SQS::Queue")
    main = {k: v for k, v in queues.items() if "RedrivePolicy" in v["Properties"]}
    names = {logical_name("", _queue_name(v)) for v in main.values()}
    assert names == routed
    dlqs = {_queue_name(v) for k, v in queues.items() if k not in main}
    assert dlqs == {_queue_name(v) + "--dlq" for v in main.values()}


def test_every_queue_has_its_function_dlq_and_partial_batch_responses(doc: dict[str, Any]) -> None:
    resources = doc["Resources"]
    functions = _of_type(doc, "AWS::Serverless::Function")
    consumed: dict[str, str] = {}
    for fid, fn in functions.items():
        if fid == "HttpFunction":
            continue
        props = fn["Properties"]
        queue = props["Environment"]["Variables"]["LUNAMAIL_LAMBDA_QUEUE"]
        [event] = props["Events"].values()
        assert event["Type"] == "SQS"
        assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        queue_id = event["Properties"]["Queue"]["Fn::GetAtt"][0]
        source = resources[queue_id]["Properties"]
        assert logical_name("", _queue_name(resources[queue_id])) == queue, fid
        assert source["VisibilityTimeout"] >= props["Timeout"]
        redrive = source["RedrivePolicy"]
        dlq = resources[redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]]
        assert _queue_name(dlq) == _queue_name(resources[queue_id]) + "--dlq"
        assert redrive["maxReceiveCount"] == 5
        consumed[queue] = fid
    assert sorted(consumed) == sorted([*default_router().queues(), SES_QUEUE, UPLOADS_QUEUE])
    glob = doc["Globals"]["Function"]
    assert glob["Handler"] == "lunamail.entrypoints.aws.sqs_handler"
    assert glob["Environment"]["Variables"]["LUNAMAIL_QUEUE"] == "sqs"


def test_http_api_sends_every_request_to_the_asgi_function(doc: dict[str, Any]) -> None:
    fn = doc["Resources"]["HttpFunction"]["Properties"]
    assert fn["Handler"] == "lunamail.entrypoints.aws.http.http_handler"
    [event] = fn["Events"].values()
    # No path or method: the API's $default route, so every path reaches the app.
    assert event == {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "HttpApi"}}}
    assert doc["Resources"]["HttpApi"]["Type"] == "AWS::Serverless::HttpApi"
    # The custom domain is the base URL of every link; the workers get the same URL.
    mapping = doc["Resources"]["ApiDomainMapping"]
    assert mapping["Condition"] == "HasDomain" and mapping["Properties"]["ApiId"] == {"Ref": "HttpApi"}
    workers_url = doc["Globals"]["Function"]["Environment"]["Variables"]["LUNAMAIL_BASE_URL"]
    assert workers_url["Fn::If"][1] == {"Fn::Sub": "https://${DomainName}"}
    assert doc["Outputs"]["BaseUrl"]["Value"] == workers_url
    assert fn["Environment"]["Variables"]["LUNAMAIL_BASE_URL"]["Fn::If"][1] == workers_url["Fn::If"][1]


def test_ses_events_reach_the_feedback_function_through_sns(doc: dict[str, Any]) -> None:
    res = doc["Resources"]
    dest = res["ConfigurationSetEvents"]["Properties"]
    assert dest["ConfigurationSetName"] == {"Ref": "ConfigurationSet"}
    events = dest["EventDestination"]
    assert set(events["MatchingEventTypes"]) == {
        "bounce", "complaint", "delivery", "reject", "deliveryDelay"
    }
    assert events["SnsDestination"]["TopicARN"] == {"Ref": "SesEventsTopic"}
    sub = res["SesEventsSubscription"]["Properties"]
    queue_id = sub["Endpoint"]["Fn::GetAtt"][0]
    assert (sub["Protocol"], sub["TopicArn"]) == ("sqs", {"Ref": "SesEventsTopic"})
    assert logical_name("", _queue_name(res[queue_id])) == SES_QUEUE
    fn = next(f["Properties"] for f in _of_type(doc, "AWS::Serverless::Function").values()
              if f["Properties"]["Environment"]["Variables"].get("LUNAMAIL_LAMBDA_QUEUE") == SES_QUEUE)
    assert fn["Handler"] == "lunamail.entrypoints.aws.feedback.ses_feedback_handler"
    [statement] = res["SesEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "SesEventsTopic"}}}
    [statement] = res["SesEventsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ses.amazonaws.com"}
    env = doc["Globals"]["Function"]["Environment"]["Variables"]
    assert env["LUNAMAIL_SES_CONFIGURATION_SET"] == {"Ref": "ConfigurationSet"}


def test_senders_are_capped_and_share_the_configured_rate(doc: dict[str, Any]) -> None:
    capped = {}
    for fn in _of_type(doc, "AWS::Serverless::Function").values():
        for event in fn["Properties"]["Events"].values():
            if "ScalingConfig" in event["Properties"]:
                capped[fn["Properties"]["Environment"]["Variables"]["LUNAMAIL_LAMBDA_QUEUE"]] = (
                    event["Properties"]["ScalingConfig"]
                )
    assert capped == {"delivery.send_batch": {"MaximumConcurrency": {"Ref": "SendConcurrency"}}}
    assert doc["Parameters"]["SendConcurrency"]["MinValue"] == 2  # Lambda's floor
    env = doc["Globals"]["Function"]["Environment"]["Variables"]
    assert env["LUNAMAIL_SEND_RATE"] == {"Ref": "SendRate"}


def test_one_rule_per_consuming_handler_carries_its_events_and_no_command(
    doc: dict[str, Any],
) -> None:
    res = doc["Resources"]
    kinds = {name: cls.KIND for name, cls in registry().items()}
    expected = {
        queue: sorted(n for n in names if kinds[n] == "event")
        for queue, names in default_router().subscriptions().items()
    }
    got: dict[str, list[str]] = {}
    for rule in _of_type(doc, "AWS::Events::Rule").values():
        props = rule["Properties"]
        assert props["EventBusName"] == {"Ref": "EventBus"}
        assert props["EventPattern"]["source"] == ["lunamail"]
        [target] = props["Targets"]
        queue = logical_name("", _queue_name(res[target["Arn"]["Fn::GetAtt"][0]]))
        assert queue is not None
        got[queue] = sorted(props["EventPattern"]["detail-type"])
    assert got == {q: names for q, names in expected.items() if names}
    assert res["EventArchive"]["Properties"]["SourceArn"] == {"Fn::GetAtt": ["EventBus", "Arn"]}
    assert doc["Globals"]["Function"]["Environment"]["Variables"]["LUNAMAIL_EVENT_BUS"] == {
        "Ref": "EventBus"
    }


def test_created_csv_uploads_notify_the_upload_function(doc: dict[str, Any]) -> None:
    res = doc["Resources"]
    [config] = res["Bucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Event"] == "s3:ObjectCreated:*"
    assert config["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": "uploads/"}, {"Name": "suffix", "Value": ".csv"},
    ]
    queue_id = config["Queue"]["Fn::GetAtt"][0]
    assert logical_name("", _queue_name(res[queue_id])) == UPLOADS_QUEUE
    fn = next(f["Properties"] for f in _of_type(doc, "AWS::Serverless::Function").values()
              if f["Properties"]["Environment"]["Variables"].get("LUNAMAIL_LAMBDA_QUEUE") == UPLOADS_QUEUE)
    assert fn["Handler"] == "lunamail.entrypoints.aws.uploads.upload_handler"
    policy = res[res["Bucket"]["DependsOn"]]["Properties"]
    assert policy["Queues"] == [{"Ref": queue_id}]


def test_every_function_has_its_own_role_logs_alarm_and_tracing(doc: dict[str, Any]) -> None:
    res = doc["Resources"]
    glob = doc["Globals"]["Function"]
    assert (glob["Tracing"], glob["Architectures"]) == ("Active", ["arm64"])
    roles = set()
    for fid, fn in _of_type(doc, "AWS::Serverless::Function").items():
        props = fn["Properties"]
        assert "Policies" not in props  # SAM would add a role of its own
        role_id = props["Role"]["Fn::GetAtt"][0]
        roles.add(role_id)
        statements = res[role_id]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
        queue = props["Environment"]["Variables"].get("LUNAMAIL_LAMBDA_QUEUE")
        assert ("ses:SendRawEmail" in actions) == (queue in ("delivery.send_batch", "delivery.send_test")), fid
        for s in statements:
            if s["Action"] == "ses:SendRawEmail" or "ses:SendRawEmail" in s["Action"]:
                assert all("identity/*" in str(r) or "configuration-set" in str(r) for r in s["Resource"])
            if "sqs:ReceiveMessage" in s["Action"]:  # its own queue and DLQ only
                own = resource_id(queue) if queue else None
                assert s["Resource"] == [{"Fn::GetAtt": [f"{own}Queue", "Arn"]},
                                         {"Fn::GetAtt": [f"{own}DeadLetterQueue", "Arn"]}]
        dynamo = [s for s in statements if "dynamodb:PutItem" in s["Action"]]
        [grant] = dynamo
        if queue and queue.split(".")[0] in ("audience", "campaigns", "delivery", "reports",
                                             "tracking", "feedback", "guard", "accounts"):
            keys = grant["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
            assert keys and all(k.startswith(("A#", "ACCT#", "APIKEY#", "SYS#")) for k in keys)
        log_group = props["LoggingConfig"]
        assert log_group["LogFormat"] == "JSON"
        assert res[log_group["LogGroup"]["Ref"]]["Properties"]["RetentionInDays"] == {
            "Ref": "LogRetentionDays"
        }
        alarm = res[f"{fid}ErrorRate"]["Properties"]
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
        assert [m["Id"] for m in alarm["Metrics"]] == ["errors", "invocations", "rate"]
    assert len(roles) == len(_of_type(doc, "AWS::Serverless::Function"))
    for qid in _of_type(doc, "AWS::SQS::Queue"):
        if qid.endswith("DeadLetterQueue"):
            props = res[f"{qid}Alarm"]["Properties"]
            assert (props["MetricName"], props["Threshold"]) == ("ApproximateNumberOfMessagesVisible", 1)


def _transformed_size(child: dict[str, Any]) -> int:
    """Resources of a nested stack after the SAM transform (which adds each function's
    event source mappings, and the HTTP API's stage and invoke permission)."""
    params = {k: str(v.get("Default", "")) or "x" for k, v in child["Parameters"].items()}
    return len(sam_transform(child, params)["Resources"])


def test_every_stack_stays_within_cloudformations_500_resources() -> None:
    """Each nested stack is far below the limit, and so is the root; fail while there is
    room for more routes, not at the deploy."""
    root = _load("template.yaml")
    sizes = {"root": len(root["Resources"])}
    for sid, nested in root["Resources"].items():
        sizes[sid] = _transformed_size(_load(nested["Properties"]["TemplateURL"]))
    assert max(sizes.values()) <= LIMIT, f"{sizes}: split the largest stack further"
    # the split is what keeps the whole under the limit: together they are well over a stack's worth
    assert sum(sizes.values()) > 400, sizes


def test_the_stacks_joined_are_the_logical_template(doc: dict[str, Any]) -> None:
    """The cut loses and adds nothing: joined back through their parameters and outputs,
    the stacks are the generator's single logical template."""
    logical = _generator().template()
    glob = copy.deepcopy(doc["Globals"])
    assert glob["Function"]["CodeUri"] == "../.build/"  # relative to deploy/stacks/
    glob["Function"]["CodeUri"] = logical["Globals"]["Function"]["CodeUri"]
    assert glob == logical["Globals"]
    assert doc["Parameters"] == logical["Parameters"]
    assert doc["Outputs"] == logical["Outputs"]
    assert set(doc["Resources"]) == set(logical["Resources"])
    for rid, res in logical["Resources"].items():
        assert doc["Resources"][rid] == res, rid


def test_core_stack_holds_the_data_and_each_service_its_functions() -> None:
    root = _load("template.yaml")
    assert set(root["Resources"]) == {
        "CoreStack", "HttpStack", *(f"{s.capitalize()}Stack" for s in
                                    ("accounts", "audience", "campaigns", "delivery", "feedback",
                                     "guard", "reports", "tracking"))}
    core = _load("stacks/core.yaml")["Resources"]
    assert {"Table", "Bucket", "MasterKey", "DataKey", "EventBus", "ConfigurationSet"} <= set(core)
    assert not [r for r in core.values() if r["Type"] == "AWS::Serverless::Function"]
    for sid, nested in root["Resources"].items():
        child = _load(nested["Properties"]["TemplateURL"])
        service = sid.removesuffix("Stack").lower()
        for fid, res in child["Resources"].items():
            if res["Type"] == "AWS::Serverless::Function" and fid != "HttpFunction":
                queue = res["Properties"]["Environment"]["Variables"]["LUNAMAIL_LAMBDA_QUEUE"]
                assert queue.split(".")[0] == service, fid


def test_table_is_the_single_table_shape(doc: dict[str, Any]) -> None:
    [table] = _of_type(doc, "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert {(a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]} == {
        ("pk", "S"),
        ("sk", "S"),
    }
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert len(_of_type(doc, "AWS::S3::Bucket")) == 1


def test_committed_templates_are_what_the_generator_writes_now() -> None:
    """Routes, defaults (max attempts) or the generator changed: run deploy/generate.py."""
    gen = _generator()
    files = gen.stacks()
    assert sorted(p.relative_to(DEPLOY).as_posix() for p in (DEPLOY / "stacks").glob("*.yaml")) == sorted(
        f for f in files if f.startswith("stacks/"))
    for name, stack in files.items():
        assert (DEPLOY / name).read_text("utf-8") == gen.render(stack), name


@pytest.mark.parametrize("name", ["template.yaml", *sorted(
    f"stacks/{p.name}" for p in (DEPLOY / "stacks").glob("*.yaml"))])
def test_cfn_lint_passes(name: str) -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(DEPLOY / name, config=ManualArgs())
    assert [str(m) for m in matches] == []
