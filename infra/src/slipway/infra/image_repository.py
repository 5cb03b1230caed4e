"""ModelImageRepository: ECR for a model's serving images, scanned and immutable.

Immutable tags mean a version's image can never be swapped under a running endpoint;
scan on push reports known CVEs before the image is deployed.
"""

from __future__ import annotations

import json
from typing import Any, cast

import pulumi
import pulumi_aws as aws

KEEP_IMAGES = 30


class ModelImageRepository(pulumi.ComponentResource):
    """An ECR repository with scan on push, IMMUTABLE tags and KMS encryption."""

    repository_url: pulumi.Output[str]
    repository_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        repository_name: str,
        tags: dict[str, str],
        kms_key_arn: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("slipway:infra:ModelImageRepository", name, None, opts)
        encryption = (
            {"encryption_type": "KMS", "kms_key": kms_key_arn}
            if kms_key_arn is not None
            else {"encryption_type": "AES256"}
        )
        repo = aws.ecr.Repository(
            f"{name}-repo",
            name=repository_name,
            image_scanning_configuration={"scan_on_push": True},
            image_tag_mutability="IMMUTABLE",
            encryption_configurations=[cast(Any, encryption)],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=repository_name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"keep the newest {KEEP_IMAGES} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": KEEP_IMAGES,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[repo]),
        )
        self.repository_url = repo.repository_url
        self.repository_arn = repo.arn
        self.register_outputs(
            {"repository_url": self.repository_url, "repository_arn": self.repository_arn}
        )
