"""ModelEndpoint: a SageMaker endpoint that rolls out by canary and rolls back on its own.

One SageMaker Model and one EndpointConfiguration per model version (both immutable, named
by the version), an Endpoint whose blue/green CANARY deployment comes from the rollout plan,
and the three CloudWatch alarms that roll it back: the 5XX error rate, the p95 model latency
against the guardrail, and the prediction-drift metric the gateway-side monitoring publishes.
The previous version's Model and EndpointConfiguration are kept in the stack: SageMaker's
automatic rollback returns the endpoint to that configuration, so it must still exist, and
`sagemaker_target.verify_endpoint` recognises a silent rollback by its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from slipway.infra.plan import (
    DRIFT_METRIC,
    DRIFT_NAMESPACE,
    MODEL_ERRORS_METRIC,
    TARGET_INVOCATIONS_PER_INSTANCE,
    EndpointPlan,
)
from slipway.pipelines.serving import guardrail_metrics

VARIANT = "AllTraffic"
ALARM_PERIOD_SECONDS = 60


@dataclass(frozen=True)
class ModelRelease:
    """A registered model version ready to serve: its image and its model artifact."""

    version: int
    image_uri: str
    model_data_url: str


@dataclass(frozen=True)
class DataCapture:
    """Endpoint data capture: requests and responses as JSON lines in the spoke's bucket,
    encrypted with its key (read back by `slipway monitor --env`)."""

    destination_s3_uri: str
    kms_key_id: pulumi.Input[str]
    sampling_percent: int = 100
    json_content_types: tuple[str, ...] = ("application/json",)
    csv_content_types: tuple[str, ...] = ("text/csv",)


@dataclass(frozen=True)
class ServingContainer:
    """What the serving container is told through the Model's environment: the names its
    guardrail metrics carry (it cannot learn them otherwise) and any extra settings."""

    extra: Mapping[str, str] = field(default_factory=dict)

    def environment(self, endpoint_name: str, version: int) -> dict[str, str]:
        return {
            guardrail_metrics.ENDPOINT_ENV: endpoint_name,
            guardrail_metrics.VARIANT_ENV: VARIANT,
            guardrail_metrics.VERSION_ENV: str(version),
            **self.extra,
        }


def guardrail_dimensions(endpoint_name: str) -> dict[str, str]:
    """The dimensions the serving container publishes its guardrail metrics with."""
    return guardrail_metrics.dimensions(endpoint_name, VARIANT)


def config_name(endpoint_name: str, version: int) -> str:
    """The EndpointConfiguration (and Model) name of a version: verification keys on it."""
    return f"{endpoint_name}-v{version}"


def alarm_names(endpoint_name: str) -> dict[str, str]:
    """The rollback alarms of an endpoint by guardrail."""
    return {
        "errors": f"{endpoint_name}-model-error-rate",
        "latency": f"{endpoint_name}-p95-latency",
        "drift": f"{endpoint_name}-prediction-psi",
    }


class ModelEndpoint(pulumi.ComponentResource):
    """Endpoint + versioned configurations + rollback alarms + autoscaling bounds."""

    endpoint_name: pulumi.Output[str]
    endpoint_config_name: pulumi.Output[str]
    previous_endpoint_config_name: pulumi.Output[str | None]
    alarm_names: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        endpoint_name: str,
        plan: EndpointPlan,
        release: ModelRelease,
        previous: ModelRelease | None,
        execution_role_arn: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        champion_p95_latency_ms: float,
        guardrail_dimensions: dict[str, str],
        tags: dict[str, str],
        container: ServingContainer | None = None,
        data_capture: DataCapture | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("slipway:infra:ModelEndpoint", name, None, opts)
        kept = [release]
        if previous is not None and previous.version != release.version:
            kept.append(previous)
        self._container = container or ServingContainer()
        self._data_capture = data_capture
        configs = [
            self._versioned_config(
                name, endpoint_name, plan, r, execution_role_arn, kms_key_arn, tags
            )
            for r in kept
        ]
        alarms = self._rollback_alarms(
            name, endpoint_name, plan, champion_p95_latency_ms, guardrail_dimensions, tags
        )
        current = config_name(endpoint_name, release.version)
        endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=endpoint_name,
            endpoint_config_name=current,
            deployment_config={
                "blue_green_update_policy": {
                    "traffic_routing_configuration": {
                        "type": "CANARY",
                        "canary_size": {"type": "CAPACITY_PERCENT", "value": plan.canary_percent},
                        "wait_interval_in_seconds": plan.wait_seconds,
                    },
                    "termination_wait_in_seconds": plan.termination_wait_seconds,
                    "maximum_execution_timeout_in_seconds": plan.max_execution_seconds,
                },
                "auto_rollback_configuration": {
                    # Known names, not outputs: the policies match them in preview too.
                    "alarms": [{"alarm_name": n} for n in alarm_names(endpoint_name).values()],
                },
            },
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*configs, *alarms]),
        )
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=f"endpoint/{endpoint_name}/variant/{VARIANT}",
            min_capacity=plan.min_instances,
            max_capacity=plan.max_instances,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[endpoint]),
        )
        aws.appautoscaling.Policy(
            f"{name}-scaling-policy",
            name=f"{endpoint_name}-invocations",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": float(TARGET_INVOCATIONS_PER_INSTANCE),
                "predefined_metric_specification": {
                    "predefined_metric_type": "SageMakerVariantInvocationsPerInstance",
                },
                "scale_in_cooldown": 300,
                "scale_out_cooldown": 60,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.endpoint_name = endpoint.name
        self.endpoint_config_name = pulumi.Output.from_input(current)
        self.previous_endpoint_config_name = pulumi.Output.from_input(
            config_name(endpoint_name, kept[1].version) if len(kept) > 1 else None
        )
        self.alarm_names = pulumi.Output.all(*(a.name for a in alarms))
        self.register_outputs(
            {
                "endpoint_name": self.endpoint_name,
                "endpoint_config_name": self.endpoint_config_name,
                "previous_endpoint_config_name": self.previous_endpoint_config_name,
                "alarm_names": self.alarm_names,
            }
        )

    def _versioned_config(
        self,
        name: str,
        endpoint_name: str,
        plan: EndpointPlan,
        release: ModelRelease,
        role_arn: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        tags: dict[str, str],
    ) -> aws.sagemaker.EndpointConfiguration:
        versioned = config_name(endpoint_name, release.version)
        model = aws.sagemaker.Model(
            f"{name}-model-v{release.version}",
            name=versioned,
            execution_role_arn=role_arn,
            primary_container={
                "image": release.image_uri,
                "model_data_url": release.model_data_url,
                "environment": self._container.environment(endpoint_name, release.version),
            },
            tags={**tags, "model-version": str(release.version)},
            # A version's Model and configuration are immutable and named by the version:
            # these settings are fixed when it is created. A version created before them keeps
            # serving as it was instead of being replaced in place (same name, still in use).
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["primaryContainer.environment"]
            ),
        )
        return aws.sagemaker.EndpointConfiguration(
            f"{name}-config-v{release.version}",
            name=versioned,
            # The instances' storage volume, encrypted with the spoke's own key (policy
            # endpoint-config-encrypted), not an AWS-owned default.
            kms_key_arn=kms_key_arn,
            production_variants=[
                {
                    "variant_name": VARIANT,
                    "model_name": versioned,
                    "initial_instance_count": plan.min_instances,
                    "instance_type": plan.instance_type,
                }
            ],
            data_capture_config=self._capture_args(),
            tags={**tags, "model-version": str(release.version)},
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[model], ignore_changes=["dataCaptureConfig"]
            ),
        )

    def _capture_args(self) -> Any:
        capture = self._data_capture
        if capture is None:
            return None
        return {
            "enable_capture": True,  # pulumi-aws defaults it to false
            "initial_sampling_percentage": capture.sampling_percent,
            "destination_s3_uri": capture.destination_s3_uri,
            "kms_key_id": capture.kms_key_id,
            "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
            "capture_content_type_header": {
                "json_content_types": list(capture.json_content_types),
                "csv_content_types": list(capture.csv_content_types),
            },
        }

    def _rollback_alarms(
        self,
        name: str,
        endpoint_name: str,
        plan: EndpointPlan,
        champion_p95_latency_ms: float,
        guardrail_dimensions: dict[str, str],
        tags: dict[str, str],
    ) -> list[aws.cloudwatch.MetricAlarm]:
        names = alarm_names(endpoint_name)
        dims = {"EndpointName": endpoint_name, "VariantName": VARIANT}
        child = pulumi.ResourceOptions(parent=self)

        def alarm(
            key: str, description: str, threshold: float, **metric: Any
        ) -> aws.cloudwatch.MetricAlarm:
            # M of N one-minute datapoints, derived from the false-rollback budget (plan.py).
            rule = plan.error_alarm if key == "errors" else plan.metric_alarm
            return aws.cloudwatch.MetricAlarm(
                f"{name}-alarm-{key}",
                name=names[key],
                alarm_description=f"{description}; {rule.datapoints_to_alarm} of "
                f"{rule.evaluation_periods} minutes (false alarm <= {rule.false_alarm:.2%})",
                comparison_operator="GreaterThanThreshold",
                evaluation_periods=rule.evaluation_periods,
                datapoints_to_alarm=rule.datapoints_to_alarm,
                threshold=threshold,
                # No traffic is not a failure: a quiet canary must not roll back.
                treat_missing_data="notBreaching",
                tags=tags,
                opts=child,
                **metric,
            )

        # The model's own errors, as the serving container publishes them (Average of
        # ModelErrors is failed / given): SageMaker's Invocation5XXErrors also counts the
        # gateway's load shedding and "no model yet" 503s, which are not the version's fault
        # and must not roll a healthy canary back.
        errors = alarm(
            "errors",
            "share of requests the model failed (ModelErrors) above "
            "rollout.guardrails.max_error_rate",
            plan.max_error_rate,
            namespace=DRIFT_NAMESPACE,
            metric_name=MODEL_ERRORS_METRIC,
            dimensions=guardrail_dimensions,
            period=ALARM_PERIOD_SECONDS,
            statistic="Average",
        )
        latency = alarm(
            "latency",
            "p95 ModelLatency above the champion's p95 times "
            "rollout.guardrails.max_p95_latency_ratio",
            # ModelLatency is reported in microseconds.
            round(champion_p95_latency_ms * plan.max_latency_ratio * 1000.0, 3),
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",
            dimensions=dims,
            period=ALARM_PERIOD_SECONDS,
            extended_statistic="p95",
        )
        drift = alarm(
            "drift",
            "prediction PSI above rollout.guardrails.max_prediction_psi",
            plan.max_prediction_psi,
            namespace=DRIFT_NAMESPACE,
            metric_name=DRIFT_METRIC,
            dimensions=guardrail_dimensions,
            period=ALARM_PERIOD_SECONDS,
            statistic="Maximum",
        )
        return [errors, latency, drift]
