# One execution role (what ECS itself needs to start a task: pull the image, write logs, read the
# secrets) and one task role per service (what the code may do), each limited to its own prefixes.

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    # Only tasks of this account may assume the roles (confused-deputy protection).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.aws_region}:${local.account_id}:*"]
    }
  }
}

# --- execution role ---------------------------------------------------------------------------

locals {
  # Secrets as ECS sees them (variable name => valueFrom), and the resources IAM must allow: a
  # Secrets Manager valueFrom may end in :json-key:version-stage:version-id, which IAM does not
  # take, so it is cut back to the secret's own seven-part ARN.
  task_secrets = merge(
    local.kafka_password_value_from == "" ? {} : { FRAUDSTREAM_KAFKA__SASL_PASSWORD = local.kafka_password_value_from },
    var.task_secrets,
  )
  variable_secret_arns = compact(concat([local.msk ? "" : var.external_kafka_password_secret_arn], values(var.task_secrets)))
  secretsmanager_arns = concat(
    local.msk ? [aws_secretsmanager_secret.msk_scram[0].arn] : [],
    [for arn in local.variable_secret_arns : join(":", slice(split(":", arn), 0, 7)) if strcontains(arn, ":secretsmanager:")],
  )
  ssm_parameter_arns = [for arn in local.variable_secret_arns : arn if strcontains(arn, ":ssm:")]
  secret_kms_keys    = concat(local.msk ? [aws_kms_key.main.arn] : [], var.secrets_kms_key_arns)
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # the action has no resource-level permissions
  }

  statement {
    sid = "EcrPull"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [aws_ecr_repository.app.arn]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for group in aws_cloudwatch_log_group.service : "${group.arn}:*"]
  }

  dynamic "statement" {
    for_each = length(local.secretsmanager_arns) > 0 ? [1] : []
    content {
      sid       = "ReadSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = distinct(local.secretsmanager_arns)
    }
  }

  dynamic "statement" {
    for_each = length(local.ssm_parameter_arns) > 0 ? [1] : []
    content {
      sid       = "ReadParameters"
      actions   = ["ssm:GetParameters"]
      resources = distinct(local.ssm_parameter_arns)
    }
  }

  dynamic "statement" {
    for_each = length(local.secret_kms_keys) > 0 ? [1] : []
    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = local.secret_kms_keys

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${var.aws_region}.amazonaws.com", "ssm.${var.aws_region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role" "execution" {
  name               = "${local.name}-ecs-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "execution" {
  name   = "start-tasks"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- task roles -------------------------------------------------------------------------------

locals {
  # Prefixes each service reads and writes. MLflow's artifacts live under models/ (clients read
  # and write them directly when the server does not proxy artifacts): the worker loads models,
  # the drift monitor the reference sample logged with the champion's run.
  s3_access = {
    worker        = { read = [var.models_prefix], write = [] }
    drift         = { read = [var.lake_prefix, var.models_prefix, var.reports_prefix], write = [var.reports_prefix] }
    trainer       = { read = [var.lake_prefix, var.models_prefix], write = [var.models_prefix] }
    "lake-writer" = { read = [var.lake_prefix], write = [var.lake_prefix] }
  }
}

data "aws_iam_policy_document" "task" {
  for_each = local.s3_access

  # Listing is bucket-wide on purpose: without s3:ListBucket S3 answers 403, not 404, for a
  # missing key, and the store tells "missing" (ObjectNotFoundError) from "refused" by that code.
  statement {
    sid       = "ListBucket"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.data.arn]
  }

  statement {
    sid       = "ReadOwnPrefixes"
    actions   = ["s3:GetObject"]
    resources = [for prefix in each.value.read : "${aws_s3_bucket.data.arn}/${prefix}/*"]
  }

  dynamic "statement" {
    for_each = length(each.value.write) > 0 ? [1] : []
    content {
      sid       = "WriteOwnPrefixes"
      actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
      resources = [for prefix in each.value.write : "${aws_s3_bucket.data.arn}/${prefix}/*"]
    }
  }

  # Objects are encrypted with the project's key; S3 uses it on the caller's behalf.
  statement {
    sid       = "UseBucketKey"
    actions   = length(each.value.write) > 0 ? ["kms:Decrypt", "kms:GenerateDataKey"] : ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.aws_region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "task" {
  for_each           = local.services
  name               = "${local.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "task" {
  for_each = local.services
  name     = "object-store"
  role     = aws_iam_role.task[each.key].id
  policy   = data.aws_iam_policy_document.task[each.key].json
}
