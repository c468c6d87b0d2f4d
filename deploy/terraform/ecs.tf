# The four long-running processes of the image, each a Fargate service in the private subnets:
#   worker       scores transactions; /predict and /health behind the ALB
#   drift        windows over fraud-scores, drift reports, retrain requests
#   trainer      retrains on each retrain request, registers and gates in MLflow
#   lake-writer  archives transactions and labels into the lake the trainer reads

resource "aws_ecs_cluster" "main" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }
}

resource "aws_ecs_cluster_capacity_providers" "main" {
  cluster_name       = aws_ecs_cluster.main.name
  capacity_providers = ["FARGATE"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "service" {
  for_each          = local.services
  name              = "/ecs/${local.name}/${each.key}"
  retention_in_days = var.log_retention_days
}

locals {
  # The worker starts from a model folder. On ECS there is none in the image, so the container
  # first saves the registry's champion (native XGBoost files, checked like a hot swap) and then
  # becomes the worker; a registry that cannot be reached fails the task and ECS retries it.
  worker_start = <<-EOT
    set -eu
    python - <<'PY'
    import os
    from pathlib import Path

    from stream_app.model_store import load_champion

    bundle = load_champion(
        os.environ["FRAUDSTREAM_MLFLOW__TRACKING_URI"],
        os.environ["FRAUDSTREAM_MLFLOW__MODEL_NAME"],
        os.environ["FRAUDSTREAM_MLFLOW__CHAMPION_ALIAS"],
    )
    bundle.save(Path(os.environ["FRAUDSTREAM_WORKER__MODEL_PATH"]))
    PY
    exec fraudstream-worker
  EOT

  default_commands = {
    worker        = ["sh", "-c", local.worker_start]
    drift         = ["fraudstream-drift"]
    trainer       = ["fraudstream-train", "retrain-consumer"]
    "lake-writer" = ["fraudstream-train", "lake-writer"]
  }
  commands = merge(local.default_commands, var.service_commands)

  # Settings every service reads (FRAUDSTREAM_<SECTION>__<FIELD>, see docs/configuration.md).
  # Empty values are left out, so the settings' own defaults apply.
  common_environment = {
    for name, value in {
      FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS  = local.kafka_settings.bootstrap_servers
      FRAUDSTREAM_KAFKA__SECURITY_PROTOCOL  = local.kafka_settings.security_protocol
      FRAUDSTREAM_KAFKA__SASL_MECHANISM     = local.kafka_settings.sasl_mechanism
      FRAUDSTREAM_KAFKA__SASL_USERNAME      = local.kafka_settings.sasl_mechanism == "" ? "" : var.kafka_sasl_username
      FRAUDSTREAM_KAFKA__PARTITIONS         = tostring(var.kafka_partitions)
      FRAUDSTREAM_KAFKA__REPLICATION_FACTOR = tostring(local.kafka_settings.replication_factor)
      FRAUDSTREAM_MLFLOW__TRACKING_URI      = var.mlflow_tracking_uri
      FRAUDSTREAM_MLFLOW__MODEL_NAME        = "fraudstream-xgb"
      FRAUDSTREAM_MLFLOW__CHAMPION_ALIAS    = "champion"
      FRAUDSTREAM_STORE__URI                = "s3://${aws_s3_bucket.data.bucket}"
      FRAUDSTREAM_STORE__S3_REGION          = var.aws_region
      FRAUDSTREAM_WORKER__LOG_LEVEL         = var.log_level
      FRAUDSTREAM_WORKER__WEB_HOST          = "0.0.0.0"
      FRAUDSTREAM_WORKER__WEB_PORT          = tostring(local.worker_port)
      FRAUDSTREAM_WORKER__MODEL_PATH        = "/home/fraudstream/models/champion"
      FRAUDSTREAM_WORKER__DATA_DIR          = "/home/fraudstream/worker"
      FRAUDSTREAM_DRIFT__WEB_PORT           = tostring(local.drift_port)
      AWS_DEFAULT_REGION                    = var.aws_region
      MLFLOW_HTTP_REQUEST_MAX_RETRIES       = "2"
      MLFLOW_HTTP_REQUEST_TIMEOUT           = "30"
    } : name => value if value != ""
  }
  environment = [
    for name, value in merge(local.common_environment, var.extra_environment) : { name = name, value = value }
  ]
  secrets = [for name, arn in local.task_secrets : { name = name, valueFrom = arn }]

  container_common = {
    image       = local.image
    essential   = true
    environment = local.environment
    secrets     = local.secrets
    # Time to flush produced verdicts and commit after SIGTERM (Fargate allows up to 120 s).
    stopTimeout = 60
  }

  container_definitions = {
    for service in local.services : service => jsonencode([merge(local.container_common, {
      name    = service
      command = local.commands[service]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.service[service].name
          awslogs-region        = var.aws_region
          awslogs-stream-prefix = service
        }
      }
      portMappings = service == "worker" ? [{ containerPort = local.worker_port, protocol = "tcp" }] : []
      # Ready means: model loaded, labels caught up (the worker answers 200 only then).
      healthCheck = service == "worker" ? {
        command     = ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${local.worker_port}/health', timeout=4)"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 180
      } : null
    })])
  }
}

resource "aws_ecs_task_definition" "service" {
  for_each                 = local.services
  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.service_sizes[each.key].cpu
  memory                   = var.service_sizes[each.key].memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task[each.key].arn
  container_definitions    = local.container_definitions[each.key]

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }
}

resource "aws_ecs_service" "service" {
  for_each         = local.services
  name             = each.key
  cluster          = aws_ecs_cluster.main.id
  task_definition  = aws_ecs_task_definition.service[each.key].arn
  desired_count    = var.service_sizes[each.key].desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  # Workers share partitions, so two at once is fine; two drift monitors or trainers would
  # each act on the same stream, so those stop the old task before starting the new one.
  deployment_minimum_healthy_percent = each.key == "worker" ? 100 : 0
  deployment_maximum_percent         = each.key == "worker" ? 200 : 100
  health_check_grace_period_seconds  = each.key == "worker" ? 240 : null

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  dynamic "load_balancer" {
    for_each = each.key == "worker" ? [1] : []
    content {
      target_group_arn = aws_lb_target_group.worker.arn
      container_name   = "worker"
      container_port   = local.worker_port
    }
  }

  depends_on = [aws_lb_listener_rule.worker, aws_iam_role_policy.execution]
}
