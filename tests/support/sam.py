"""The SAM transform in tests: ``samtranslator``, the library behind the SAM CLI and
CloudFormation's ``AWS::Serverless-2016-10-31`` transform."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import boto3

REGION = "us-east-1"


def sam_transform(child: dict[str, Any], params: Mapping[str, str],
                  code_uri: str = "s3://artifacts/code.zip") -> dict[str, Any]:
    """The template after the SAM transform, as CloudFormation runs it (in us-east-1),
    its code at ``code_uri`` (what ``sam deploy`` puts in place of the local CodeUri)."""
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    if "Transform" not in child:
        return copy.deepcopy(child)
    child = copy.deepcopy(child)
    child["Globals"]["Function"]["CodeUri"] = code_uri
    translator = Translator(None, Parser(), boto_session=boto3.Session(region_name=REGION))
    out: dict[str, Any] = translator.translate(
        copy.deepcopy(child), parameter_values=dict(params),
        get_managed_policy_map=dict)  # every function has its own role: no managed policy
    return out
