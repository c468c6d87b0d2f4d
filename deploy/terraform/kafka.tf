# Kafka for the services: an MSK cluster (kafka_mode = "msk", SASL/SCRAM over TLS on 9096) or an
# existing cluster by address (kafka_mode = "external"). Either way the services get the same
# FRAUDSTREAM_KAFKA__* settings and the password as an ECS secret, never as a plain value.

resource "aws_cloudwatch_log_group" "msk" {
  count             = local.msk ? 1 : 0
  name              = "/msk/${local.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_msk_configuration" "main" {
  count          = local.msk ? 1 : 0
  name           = "${local.name}-kafka"
  kafka_versions = [var.msk_kafka_version]

  # The project creates every topic it uses; a mistyped name must fail, not create a topic.
  server_properties = <<-EOT
    auto.create.topics.enable=false
    default.replication.factor=${min(3, var.msk_broker_count)}
    min.insync.replicas=${min(2, var.msk_broker_count - 1)}
    num.partitions=${var.kafka_partitions}
  EOT
}

resource "aws_msk_cluster" "main" {
  count                  = local.msk ? 1 : 0
  cluster_name           = "${local.name}-kafka"
  kafka_version          = var.msk_kafka_version
  number_of_broker_nodes = var.msk_broker_count

  broker_node_group_info {
    instance_type   = var.msk_instance_type
    client_subnets  = aws_subnet.private[*].id
    security_groups = [aws_security_group.msk[0].id]

    storage_info {
      ebs_storage_info {
        volume_size = var.msk_volume_size_gb
      }
    }
  }

  client_authentication {
    unauthenticated = false
    sasl {
      scram = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.main.arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.main[0].arn
    revision = aws_msk_configuration.main[0].latest_revision
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk[0].name
      }
    }
  }
}

# The SCRAM user. MSK requires the secret's name to start with AmazonMSK_ and a customer-managed
# key. The password is generated ephemerally and written write-only: it is in Secrets Manager
# and nowhere else (not in the state, not in the plan). Bump msk_scram_password_version to rotate.
ephemeral "random_password" "msk_scram" {
  count   = local.msk ? 1 : 0
  length  = 40
  special = false
}

resource "aws_secretsmanager_secret" "msk_scram" {
  count                   = local.msk ? 1 : 0
  name                    = "AmazonMSK_${local.name}"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = 7
}

resource "aws_secretsmanager_secret_version" "msk_scram" {
  count     = local.msk ? 1 : 0
  secret_id = aws_secretsmanager_secret.msk_scram[0].id
  secret_string_wo = jsonencode({
    username = var.kafka_sasl_username
    password = ephemeral.random_password.msk_scram[0].result
  })
  secret_string_wo_version = var.msk_scram_password_version
}

data "aws_iam_policy_document" "msk_scram_secret" {
  count = local.msk ? 1 : 0

  statement {
    sid       = "AWSKafkaResourcePolicy"
    actions   = ["secretsmanager:getSecretValue"]
    resources = [aws_secretsmanager_secret.msk_scram[0].arn]

    principals {
      type        = "Service"
      identifiers = ["kafka.amazonaws.com"]
    }
  }
}

resource "aws_secretsmanager_secret_policy" "msk_scram" {
  count      = local.msk ? 1 : 0
  secret_arn = aws_secretsmanager_secret.msk_scram[0].arn
  policy     = data.aws_iam_policy_document.msk_scram_secret[0].json
}

resource "aws_msk_scram_secret_association" "main" {
  count           = local.msk ? 1 : 0
  cluster_arn     = aws_msk_cluster.main[0].arn
  secret_arn_list = [aws_secretsmanager_secret.msk_scram[0].arn]

  depends_on = [aws_secretsmanager_secret_version.msk_scram]
}

locals {
  kafka_settings = local.msk ? {
    bootstrap_servers  = aws_msk_cluster.main[0].bootstrap_brokers_sasl_scram
    security_protocol  = "SASL_SSL"
    sasl_mechanism     = "SCRAM-SHA-512"
    replication_factor = min(3, var.msk_broker_count)
    } : {
    bootstrap_servers  = var.external_bootstrap_servers
    security_protocol  = var.external_kafka_security_protocol
    sasl_mechanism     = startswith(var.external_kafka_security_protocol, "SASL_") ? var.external_kafka_sasl_mechanism : ""
    replication_factor = var.external_kafka_replication_factor
  }

  # ECS reads a JSON key of a Secrets Manager secret with the ARN:key:: form.
  kafka_password_value_from = local.msk ? "${aws_secretsmanager_secret.msk_scram[0].arn}:password::" : var.external_kafka_password_secret_arn
}
