"""ArtifactStore: the S3 bucket for models and pipeline artifacts, safe by construction.

Versioning (nothing uploaded is ever lost), SSE-KMS, every public access path blocked,
a bucket policy that refuses plain HTTP, and a lifecycle rule that expires old
non-current versions so versioning does not grow the bill forever. Prefixes that hold data
which must not be kept (an endpoint's data capture: raw request bodies, possibly personal
data) get a rule of their own expiring their objects, and their non-current versions a day
later, so the data is really gone.

Sub-resources name the bucket by its known name (not `bucket.id`) so that the policies can
match them to the bucket even in `pulumi preview`, where a new bucket's id is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

NONCURRENT_VERSION_DAYS = 90


def tls_only_policy(bucket_name: str) -> str:
    """A bucket policy denying every request that is not over TLS."""
    arn = f"arn:aws:s3:::{bucket_name}"
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [arn, f"{arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


class ArtifactStore(pulumi.ComponentResource):
    """A versioned, KMS-encrypted, private, TLS-only S3 bucket."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        bucket_name: str,
        tags: dict[str, str],
        kms_key_arn: pulumi.Input[str] | None = None,
        expiring_prefixes: Mapping[str, int] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`expiring_prefixes`: key prefix -> days after which its objects are deleted."""
        super().__init__("slipway:infra:ArtifactStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if kms_key_arn is None:
            key = aws.kms.Key(
                f"{name}-key",
                description=f"Encrypts the artifacts in s3://{bucket_name}",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                tags=tags,
                opts=child,
            )
            kms_key_arn = key.arn
        bucket = aws.s3.Bucket(f"{name}-bucket", bucket=bucket_name, tags=tags, opts=child)
        after = pulumi.ResourceOptions(parent=self, depends_on=[bucket])
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_name,
            versioning_configuration={"status": "Enabled"},
            opts=after,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse",
            bucket=bucket_name,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": kms_key_arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=after,
        )
        block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket_name,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=after,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket_name,
            policy=tls_only_policy(bucket_name),
            # S3 rejects a policy write racing the public access block.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[bucket, block]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_name,
            rules=[
                {
                    "id": "expire-old-noncurrent-versions",
                    "status": "Enabled",
                    "filter": {},
                    "noncurrent_version_expiration": {
                        "noncurrent_days": NONCURRENT_VERSION_DAYS,
                        "newer_noncurrent_versions": 3,
                    },
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
                },
                *(
                    {
                        "id": f"expire-{prefix.strip('/').replace('/', '-')}",
                        "status": "Enabled",
                        "filter": {"prefix": prefix},
                        "expiration": {"days": days},
                        "noncurrent_version_expiration": {"noncurrent_days": 1},
                    }
                    for prefix, days in sorted((expiring_prefixes or {}).items())
                ),
            ],
            opts=after,
        )
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.kms_key_arn = pulumi.Output.from_input(kms_key_arn)
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "kms_key_arn": self.kms_key_arn,
            }
        )
