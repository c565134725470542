"""The generated stacks deployed to moto's CloudFormation, and Lambda played around them
(no tests here).

:func:`deploy` does what ``sam deploy`` does with ``deploy/template.yaml``: each nested
stack in the root's order, SAM-transformed (``samtranslator``, the library the SAM CLI
and CloudFormation's transform use) with the parameters the root passes it, its imports
taken from the outputs of the stacks deployed before it.  Moto's CloudFormation has no
model for some resource types (``DIRECT``); those resources are made through their own
APIs from the same properties, before the stack when moto's resources refer to them
(the master-key secret, the SES configuration set, the HTTP API), after it otherwise
(subscriptions, policies, alarms, the SES event destination, the API's stage), and
references to them are replaced by what their API returned.

:class:`Lambda` plays the Lambda service: it reads the deployed event source mappings
and functions back from moto (queue, batch size, handler, environment), turns the
mappings off in moto (whose own poller would run the functions in Docker) and polls the
queues itself, invoking each function's handler in a container of its own: the
entrypoint class behind the handler name, built in the function's environment.
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import os
import re
import secrets
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import yaml

from lunamail.entrypoints.aws.feedback import SesFeedbackApp
from lunamail.entrypoints.aws.http import HttpApp
from lunamail.entrypoints.aws.sqs import SqsApp
from lunamail.entrypoints.aws.uploads import UploadApp
from tests.support.sam import sam_transform

from .aws_fixtures import REGION, sqs_record

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ACCOUNT = "123456789012"  # moto's account
PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
          "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None}
# Resource types the stacks use that moto's CloudFormation cannot make (moto 5.2): made
# through their own APIs here.  deploy/README.md lists the same.
DIRECT = (
    "AWS::SecretsManager::Secret", "AWS::SES::ConfigurationSet",
    "AWS::SES::ConfigurationSetEventDestination", "AWS::SNS::Subscription",
    "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy", "AWS::CloudWatch::Alarm",
    "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage",
    "AWS::S3::Bucket NotificationConfiguration",  # a property moto's bucket model ignores
)
BUCKET_NOTIFICATION = DIRECT[-1]  # set through the S3 API after the stack
# The entrypoint class behind each handler name the template gives a function.
ENTRYPOINTS: dict[str, Callable[[], Any]] = {
    "lunamail.entrypoints.aws.sqs_handler": SqsApp,
    "lunamail.entrypoints.aws.feedback.ses_feedback_handler": SesFeedbackApp,
    "lunamail.entrypoints.aws.uploads.upload_handler": UploadApp,
    "lunamail.entrypoints.aws.http.http_handler": HttpApp,
}
# The properties the direct makers below read (all, for the types not named): the rest
# (the secret's KMS key, the HTTP API's OpenAPI body) moto would not use anyway.
USED = {"AWS::SecretsManager::Secret": (), "AWS::SES::ConfigurationSet": ("Name",),
        "AWS::ApiGatewayV2::Api": ()}
# Types whose Ref moto answers with its model object instead of the name CloudFormation
# gives: the test asks moto for that attribute instead.
REF_AS = {"AWS::Events::EventBus": "Name"}
_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def _load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.load((DEPLOY / name).read_text("utf-8"),
                                    Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return doc


def _condition(expr: Any, conditions: Mapping[str, Any], params: Mapping[str, str]) -> bool:
    """The few condition functions the stacks use."""
    [(fn, arg)] = expr.items()
    if fn == "Fn::Not":
        return not _condition(arg[0], conditions, params)
    if fn == "Fn::Equals":
        a, b = (params[x["Ref"]] if isinstance(x, dict) else x for x in arg)
        return bool(a == b)
    if fn == "Condition":
        return _condition(conditions[arg], conditions, params)
    raise ValueError(f"condition function {fn} is not handled")


def _resolve(node: Any, values: Mapping[str, Mapping[str, Any]]) -> Any:
    """``node`` with Ref, GetAtt and Sub of the names in ``values`` made literal."""
    if isinstance(node, list):
        return [_resolve(n, values) for n in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in values:
        return values[node["Ref"]]["Ref"]
    if set(node) == {"Fn::GetAtt"}:
        rid, attr = node["Fn::GetAtt"]
        if attr in values.get(rid, {}):
            return values[rid][attr]
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        text = node["Fn::Sub"]

        def literal(m: re.Match[str]) -> str:
            rid, _, attr = m.group(1).partition(".")
            value = values.get(rid, {}).get(attr or "Ref")
            return value if isinstance(value, str) else m.group(0)

        text = _VAR.sub(literal, text)
        return text if not _VAR.search(text) else {"Fn::Sub": text}
    return {k: _resolve(v, values) for k, v in node.items()}


def _used(res: Mapping[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = res.get("Properties", {})
    keep = USED.get(res["Type"])
    return props if keep is None else {k: v for k, v in props.items() if k in keep}


def _refers(node: Any, names: set[str]) -> set[tuple[str, str]]:
    """(resource, attribute or "Ref") pairs of ``names`` that ``node`` refers to."""
    found: set[tuple[str, str]] = set()
    if isinstance(node, list):
        for n in node:
            found |= _refers(n, names)
    elif isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in names:
            found.add((node["Ref"], "Ref"))
        elif set(node) == {"Fn::GetAtt"} and node["Fn::GetAtt"][0] in names:
            found.add((node["Fn::GetAtt"][0], node["Fn::GetAtt"][1]))
        elif set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
            for var in _VAR.findall(node["Fn::Sub"]):
                rid, _, attr = var.partition(".")
                if rid in names:
                    found.add((rid, attr or "Ref"))
        else:
            for v in node.values():
                found |= _refers(v, names)
    return found


@dataclass
class Deployment:
    endpoint: str
    prefix: str
    stacks: dict[str, str] = field(default_factory=dict)  # nested stack id -> moto stack name
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    direct: dict[str, list[str]] = field(default_factory=dict)  # type -> logical ids made directly

    clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self.clients:
            self.clients[service] = boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)
        return self.clients[service]

    def resources(self, kind: str) -> list[str]:
        """Physical ids of every deployed resource of ``kind``."""
        cfn = self.client("cloudformation")
        out: list[str] = []
        for name in self.stacks.values():
            for res in cfn.describe_stack_resources(StackName=name)["StackResources"]:
                if res["ResourceType"] == kind:
                    out.append(res["PhysicalResourceId"])
        return out


    def forget_functions(self) -> None:
        """Take this deployment's functions off moto's dashboard list: without Docker,
        moto's ``/moto-api/data.json`` fails on any Lambda function it lists (its
        ``docker_client`` raises), and the moto server is shared with other tests."""
        from moto.awslambda.models import LambdaFunction

        ours = set(self.resources("AWS::Lambda::Function"))
        LambdaFunction.instances_tracked = [  # type: ignore[attr-defined]
            f for f in LambdaFunction.instances_tracked  # type: ignore[attr-defined]
            if f.function_name not in ours]


class _Direct:
    """Makes the resources of the ``DIRECT`` types through their own APIs."""

    def __init__(self, deployment: Deployment, stack: str) -> None:
        self.d, self.stack = deployment, stack

    def make(self, rid: str, kind: str, props: dict[str, Any]) -> dict[str, Any]:
        d = self.d
        if kind == "AWS::SecretsManager::Secret":
            arn = d.client("secretsmanager").create_secret(
                Name=f"{self.stack}-{rid}", SecretString=secrets.token_hex(32))["ARN"]
            return {"Ref": arn}
        if kind == "AWS::SES::ConfigurationSet":
            d.client("ses").create_configuration_set(ConfigurationSet={"Name": props["Name"]})
            return {"Ref": props["Name"]}
        if kind == "AWS::SES::ConfigurationSetEventDestination":
            dest = props["EventDestination"]
            d.client("ses").create_configuration_set_event_destination(
                ConfigurationSetName=props["ConfigurationSetName"],
                EventDestination={"Name": dest["Name"], "Enabled": dest["Enabled"],
                                  "MatchingEventTypes": dest["MatchingEventTypes"],
                                  "SNSDestination": {"TopicARN": dest["SnsDestination"]["TopicARN"]}})
            return {"Ref": dest["Name"]}
        if kind == "AWS::SNS::Subscription":
            arn = d.client("sns").subscribe(
                TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"],
                Attributes={"RawMessageDelivery": str(props.get("RawMessageDelivery", False)).lower()},
            )["SubscriptionArn"]
            return {"Ref": arn}
        if kind == "AWS::SNS::TopicPolicy":
            for topic in props["Topics"]:
                d.client("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy",
                                                     AttributeValue=json.dumps(props["PolicyDocument"]))
            return {"Ref": rid}
        if kind == "AWS::SQS::QueuePolicy":
            for url in props["Queues"]:
                d.client("sqs").set_queue_attributes(
                    QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])})
            return {"Ref": rid}
        if kind == "AWS::CloudWatch::Alarm":
            name = f"{self.stack}-{rid}"
            d.client("cloudwatch").put_metric_alarm(AlarmName=name, **props)
            return {"Ref": name}
        if kind == "AWS::ApiGatewayV2::Api":
            api = d.client("apigatewayv2").create_api(Name=f"{self.stack}-{rid}", ProtocolType="HTTP")
            return {"Ref": api["ApiId"], "ApiEndpoint": api["ApiEndpoint"]}
        if kind == "AWS::ApiGatewayV2::Stage":
            d.client("apigatewayv2").create_stage(ApiId=props["ApiId"], StageName=props["StageName"],
                                                  AutoDeploy=bool(props.get("AutoDeploy", False)))
            return {"Ref": props["StageName"]}
        if kind == BUCKET_NOTIFICATION:
            queues = [{"QueueArn": q["Queue"], "Events": [q["Event"]],
                       "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}}}
                      for q in props["NotificationConfiguration"]["QueueConfigurations"]]
            d.client("s3").put_bucket_notification_configuration(
                Bucket=props["Bucket"], NotificationConfiguration={"QueueConfigurations": queues})
            return {"Ref": rid}
        raise ValueError(f"{kind} ({rid}) is neither in moto's CloudFormation nor made directly")


def _deploy_one(d: Deployment, sid: str, template: dict[str, Any], params: dict[str, str]) -> None:
    from moto.cloudformation.parsing import resource_class_from_type

    conditions = template.get("Conditions", {})
    resources: dict[str, Any] = template["Resources"]
    for rid, res in list(resources.items()):
        if "Condition" in res and not _condition({"Condition": res["Condition"]}, conditions, params):
            del resources[rid]  # what CloudFormation does with a false condition
    direct = {rid: res for rid, res in resources.items() if resource_class_from_type(res["Type"]) is None}
    for rid, res in list(resources.items()):  # what moto's bucket model leaves out
        notify = res.get("Properties", {}).pop("NotificationConfiguration", None)
        if res["Type"] == "AWS::S3::Bucket" and notify:
            direct[f"{rid}Notification"] = {"Type": BUCKET_NOTIFICATION, "Properties": {
                "Bucket": {"Ref": rid}, "NotificationConfiguration": notify}}
    unknown = {res["Type"] for res in direct.values()} - set(DIRECT)
    assert not unknown, f"not in moto's CloudFormation and not made directly: {unknown}"
    moto_ids = set(resources) - set(direct)
    values: dict[str, dict[str, Any]] = {k: {"Ref": v} for k, v in PSEUDO.items()}
    values |= {k: {"Ref": v} for k, v in params.items()}
    maker = _Direct(d, sid)
    # before the stack: the direct resources no moto resource of this stack comes before
    pending = dict(direct)
    progress = True
    while progress:
        progress = False
        for rid, res in list(pending.items()):
            if _refers(_used(res), moto_ids | set(pending)):
                continue
            values[rid] = maker.make(rid, res["Type"], _resolve(_used(res), values))
            d.direct.setdefault(res["Type"], []).append(rid)
            del pending[rid]
            progress = True
    # the stack itself, without the direct resources; what the rest need from it as outputs
    needed = set().union(*(_refers(_used(r), moto_ids) for r in pending.values()))
    body = {k: v for k, v in template.items() if k not in ("Resources", "Outputs")}
    body["Resources"] = {}
    for rid in moto_ids:
        res = _resolve(copy.deepcopy(resources[rid]), {k: v for k, v in values.items() if k in direct})
        if "DependsOn" in res:
            deps = [x for x in ([res["DependsOn"]] if isinstance(res["DependsOn"], str) else res["DependsOn"])
                    if x in moto_ids]
            res.pop("DependsOn")
            if deps:
                res["DependsOn"] = deps
        body["Resources"][rid] = res
    made = {k: v for k, v in values.items() if k in direct}
    outputs, deferred = {}, {}
    for key, out in _resolve(copy.deepcopy(template.get("Outputs", {})), made).items():
        # an output of a resource made after the stack is read from what its API returned
        (deferred if _refers(out, set(pending)) else outputs)[key] = out
    for rid in moto_ids:
        assert not _refers(body["Resources"][rid], set(pending)), f"{rid} needs a resource made after it"
    for n, (rid, attr) in enumerate(sorted(needed)):
        outputs[f"Direct{n}"] = {"Value": {"Ref": rid} if attr == "Ref" else {"Fn::GetAtt": [rid, attr]}}
    body["Outputs"] = outputs
    as_attr = {rid: {"Ref": {"Fn::GetAtt": [rid, REF_AS[res["Type"]]]}}
               for rid, res in body["Resources"].items() if res["Type"] in REF_AS}
    body["Resources"] = {rid: _resolve(res, as_attr) for rid, res in body["Resources"].items()}
    body["Outputs"] = _resolve(body["Outputs"], as_attr)
    cfn = d.client("cloudformation")
    name = f"{d.prefix}{sid}".replace("_", "-")
    cfn.create_stack(
        StackName=name, TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()
                    if k in template.get("Parameters", {})],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    [stack] = cfn.describe_stacks(StackName=name)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    got = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    for n, (rid, attr) in enumerate(sorted(needed)):
        values.setdefault(rid, {})[attr] = got.pop(f"Direct{n}")
    # after the stack: the rest, in an order that respects their references to each other
    while pending:
        ready = [rid for rid, res in pending.items() if not _refers(_used(res), set(pending))]
        assert ready, f"direct resources refer to each other: {sorted(pending)}"
        for rid in ready:
            res = pending.pop(rid)
            values[rid] = maker.make(rid, res["Type"], _resolve(_used(res), values))
            d.direct.setdefault(res["Type"], []).append(rid)
    for key, out in deferred.items():
        got[key] = _resolve(out["Value"], values)
        assert isinstance(got[key], str), (key, got[key])
    d.stacks[sid], d.outputs[sid] = name, got


@contextmanager
def json_templates() -> Iterator[None]:
    """Moto's CloudFormation reads every body with the pure-Python YAML parser first,
    about a second per stack here; the stacks are sent as JSON, which it may read as JSON
    (moto runs in this process)."""
    from moto.cloudformation.models import Stack

    parse = Stack.parse_template

    def parse_json_first(template: str) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(template)
            return doc
        except ValueError:
            return parse(template)

    Stack.parse_template = staticmethod(parse_json_first)  # type: ignore[method-assign]
    try:
        yield
    finally:
        Stack.parse_template = staticmethod(parse)  # type: ignore[method-assign]


def deploy(endpoint: str, params: dict[str, str], code: bytes | None = None) -> Deployment:
    """The root template's nested stacks on moto, in the root's order, with ``params``
    (the root's parameters; unset ones take their defaults)."""
    root = _load("template.yaml")
    given = {k: str(v.get("Default", "")) for k, v in root["Parameters"].items()} | params
    d = Deployment(endpoint, given["QueuePrefix"])
    artifacts = f"{given['QueuePrefix'].lower().strip('-')}-artifacts"
    s3 = d.client("s3")
    s3.create_bucket(Bucket=artifacts)
    s3.put_object(Bucket=artifacts, Key="code.zip", Body=code or _empty_zip())
    for sid, nested in root["Resources"].items():
        child = _load(nested["Properties"]["TemplateURL"])
        passed: dict[str, str] = {}
        for key, value in nested["Properties"]["Parameters"].items():
            if set(value) == {"Ref"}:
                passed[key] = given[value["Ref"]]
            else:
                src, out = value["Fn::GetAtt"]
                passed[key] = d.outputs[src][out.removeprefix("Outputs.")]
        _deploy_one(d, sid, sam_transform(child, passed, f"s3://{artifacts}/code.zip"), passed)
    return d


def _empty_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("README", "the code runs in the test process")
    return buf.getvalue()


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """The process environment as a function's: its variables, no other LUNAMAIL_*."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("LUNAMAIL_")]:
            del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Container:
    """One function's warm container: its entrypoint, built in its environment."""

    def __init__(self, name: str, handler: str, env: Mapping[str, str]) -> None:
        module, _, attr = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attr)), handler
        self.name, self.handler, self.env = name, handler, dict(env)
        self.app = ENTRYPOINTS[handler]()
        self.invocations = 0

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        with environment(self.env):
            self.invocations += 1
            result: dict[str, Any] = self.app.handle(event, None)
            return result

    def close(self) -> None:
        with environment(self.env):
            self.app.reset()


@dataclass
class EventSource:
    uuid: str
    queue_arn: str
    queue_url: str
    function: str
    batch_size: int


class Lambda:
    """The Lambda service around the deployed functions: containers and the SQS poller."""

    def __init__(self, d: Deployment, extra_env: Mapping[str, str]) -> None:
        self.d, self.extra_env = d, dict(extra_env)
        self.lam, self.sqs = d.client("lambda"), d.client("sqs")
        self.containers: dict[str, Container] = {}
        self.mappings: list[EventSource] = []
        for uuid in d.resources("AWS::Lambda::EventSourceMapping"):
            esm = self.lam.get_event_source_mapping(UUID=uuid)
            # moto's own poller would run the function in Docker: Lambda is played here
            self.lam.update_event_source_mapping(UUID=uuid, Enabled=False)
            name = esm["EventSourceArn"].rsplit(":", 1)[1]
            url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
            self.mappings.append(EventSource(uuid, esm["EventSourceArn"], url,
                                          esm["FunctionArn"].split(":function:")[1].split(":")[0], int(esm["BatchSize"])))

    def container(self, function: str) -> Container:
        if function not in self.containers:
            conf = self.lam.get_function_configuration(FunctionName=function)
            env = {k: str(v) for k, v in conf.get("Environment", {}).get("Variables", {}).items()}
            env |= self.extra_env
            self.containers[function] = Container(function, conf["Handler"], env)
        return self.containers[function]

    def function_of(self, logical_id: str) -> str:
        """The deployed name of a function by its logical id."""
        cfn = self.d.client("cloudformation")
        for name in self.d.stacks.values():
            for res in cfn.describe_stack_resources(StackName=name)["StackResources"]:
                if res["LogicalResourceId"] == logical_id:
                    return str(res["PhysicalResourceId"])
        raise KeyError(logical_id)

    def poll_once(self, m: EventSource) -> int:
        """One receive of up to the mapping's batch size, one invocation; the records not
        reported as failures are deleted, as Lambda does.  Returns the records handled."""
        resp = self.sqs.receive_message(
            QueueUrl=m.queue_url, MaxNumberOfMessages=min(m.batch_size, 10), VisibilityTimeout=60,
            MessageAttributeNames=["All"], MessageSystemAttributeNames=["All"])
        records = [sqs_record(msg, m.queue_arn) for msg in resp.get("Messages", [])]
        if not records:
            return 0
        result = self.container(m.function).invoke({"Records": records})
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        for r in records:
            if r["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=m.queue_url, ReceiptHandle=r["receiptHandle"])
        return len(records)

    def drain(self, rounds: int = 400, idle: int = 60) -> int:
        """Poll every mapping until a round finds nothing and nothing is hidden or delayed on
        the mapped queues (a retried record waits out its backoff, about a second); returns
        the records handled.  Bounded: at most ``idle`` half-second waits, and more than
        ``rounds`` rounds in all is a loop, and fails."""
        total = 0
        for _ in range(rounds):
            handled = sum(self.poll_once(m) for m in self.mappings)
            total += handled
            if handled:
                continue
            if idle <= 0 or not self.waiting(dead_letters=False):
                return total
            idle -= 1
            time.sleep(0.5)
        raise AssertionError(f"the queues were still busy after {rounds} rounds")

    def waiting(self, dead_letters: bool = True) -> dict[str, int]:
        """Messages left on each mapped queue and on every dead-letter queue (visible,
        in flight or delayed)."""
        out: dict[str, int] = {}
        urls = [m.queue_url for m in self.mappings]
        urls += [] if not dead_letters else [u for u in self.sqs.list_queues(QueueNamePrefix=self.d.prefix).get("QueueUrls", []) if u.endswith("--dlq")]
        for url in urls:
            attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed"])["Attributes"]
            n = sum(int(v) for v in attrs.values())
            if n:
                out[url.rsplit("/", 1)[1]] = n
        return out

    def close(self) -> None:
        for c in self.containers.values():
            c.close()
