# --- where and what ---------------------------------------------------------------------------

variable "project" {
  description = "Name prefix of every resource; also the ECR repository name CD pushes to."
  type        = string
  default     = "fraudstream"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.project))
    error_message = "project: 2 to 16 lowercase letters, digits or dashes, starting with a letter."
  }
}

variable "environment" {
  description = "Environment name (prod, staging, ...), part of every resource name."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,7}$", var.environment))
    error_message = "environment: 2 to 8 lowercase letters or digits, starting with a letter."
  }
}

variable "aws_region" {
  description = "AWS region of everything."
  type        = string
  default     = "us-east-1"
}

variable "aws_account_id" {
  description = "When set, the provider refuses to run with credentials of any other account."
  type        = string
  default     = ""

  validation {
    condition     = var.aws_account_id == "" || can(regex("^[0-9]{12}$", var.aws_account_id))
    error_message = "aws_account_id: empty or a 12-digit account id."
  }
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "image_tag" {
  description = "Tag of the fraudstream image in the ECR repository (CD passes the one it pushed)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag: a Docker tag naming one build (tags are immutable in the repository), not 'latest'."
  }
}

# --- network ----------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "VPC address range; split into two public /24s and two private /20s."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 16
    error_message = "vpc_cidr: an IPv4 CIDR of /16 or larger."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for both zones (cheaper; the private subnets lose egress if its zone fails)."
  type        = bool
  default     = false
}

variable "alb_allowed_cidrs" {
  description = "Client address ranges allowed to reach the load balancer (/predict and /health only)."
  type        = list(string)

  validation {
    condition     = length(var.alb_allowed_cidrs) > 0 && alltrue([for cidr in var.alb_allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "alb_allowed_cidrs: at least one IPv4 CIDR."
  }
}

variable "certificate_arn" {
  description = "ACM certificate for an HTTPS listener (HTTP then redirects to it); empty: HTTP only."
  type        = string
  default     = ""

  validation {
    condition     = var.certificate_arn == "" || can(regex("^arn:[a-z-]+:acm:", var.certificate_arn))
    error_message = "certificate_arn: empty or an ACM certificate ARN."
  }
}

variable "alb_deletion_protection" {
  description = "Refuse to delete the load balancer (turn off before a planned teardown)."
  type        = bool
  default     = true
}

# --- Kafka ------------------------------------------------------------------------------------

variable "kafka_mode" {
  description = "msk: create an Amazon MSK cluster (SASL/SCRAM over TLS); external: use the cluster at external_bootstrap_servers."
  type        = string
  default     = "msk"

  validation {
    condition     = contains(["msk", "external"], var.kafka_mode)
    error_message = "kafka_mode: msk or external."
  }
}

variable "external_bootstrap_servers" {
  description = "With kafka_mode = external: comma-separated host:port list of the brokers."
  type        = string
  default     = ""

  validation {
    condition     = var.kafka_mode != "external" || length(trimspace(var.external_bootstrap_servers)) > 0
    error_message = "external_bootstrap_servers is required when kafka_mode = external."
  }
}

variable "external_kafka_security_protocol" {
  description = "With kafka_mode = external: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
  type        = string
  default     = "SASL_SSL"

  validation {
    condition     = contains(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"], var.external_kafka_security_protocol)
    error_message = "external_kafka_security_protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
  }
}

variable "external_kafka_sasl_mechanism" {
  description = "With kafka_mode = external and a SASL protocol: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
  type        = string
  default     = "SCRAM-SHA-512"
}

variable "external_kafka_password_secret_arn" {
  description = "With kafka_mode = external: Secrets Manager or SSM parameter ARN of the SASL password (Secrets Manager JSON keys as ARN:key::)."
  type        = string
  default     = ""

  validation {
    condition     = var.external_kafka_password_secret_arn == "" || can(regex("^arn:[a-z-]+:(secretsmanager|ssm):", var.external_kafka_password_secret_arn))
    error_message = "external_kafka_password_secret_arn: empty, or a Secrets Manager secret or SSM parameter ARN."
  }
}

variable "external_kafka_ports" {
  description = "With kafka_mode = external: broker ports the tasks may connect to."
  type        = list(number)
  default     = [9092, 9093, 9094, 9096]
}

variable "external_kafka_cidrs" {
  description = "With kafka_mode = external: where the brokers are (narrow this to their addresses)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "external_kafka_replication_factor" {
  description = "With kafka_mode = external: replicas of the topics the project creates."
  type        = number
  default     = 3
}

variable "kafka_sasl_username" {
  description = "SASL user of the services (with msk, the SCRAM user this configuration creates)."
  type        = string
  default     = "fraudstream"
}

variable "kafka_partitions" {
  description = "Partitions of the topics the project creates: the most workers that can share the load."
  type        = number
  default     = 6
}

variable "msk_kafka_version" {
  description = "With kafka_mode = msk: an Apache Kafka version MSK offers."
  type        = string
  default     = "3.9.x"
}

variable "msk_broker_count" {
  description = "With kafka_mode = msk: brokers, a multiple of the two zones."
  type        = number
  default     = 2

  validation {
    condition     = var.msk_broker_count >= 2 && var.msk_broker_count % 2 == 0
    error_message = "msk_broker_count: an even number, at least 2 (one or more per zone)."
  }
}

variable "msk_instance_type" {
  description = "With kafka_mode = msk: broker instance type."
  type        = string
  default     = "kafka.m7g.large"
}

variable "msk_volume_size_gb" {
  description = "With kafka_mode = msk: EBS storage per broker."
  type        = number
  default     = 100
}

variable "msk_scram_password_version" {
  description = "With kafka_mode = msk: bump to generate and store a new SCRAM password (rotation)."
  type        = number
  default     = 1
}

# --- the services -----------------------------------------------------------------------------

variable "mlflow_tracking_uri" {
  description = "MLflow tracking server the worker and trainer use (registry and artifacts)."
  type        = string

  validation {
    condition     = can(regex("^https?://", var.mlflow_tracking_uri))
    error_message = "mlflow_tracking_uri: an http(s):// URL."
  }
}

variable "mlflow_port" {
  description = "Port of the MLflow server, for the tasks' egress rule (443 is always open)."
  type        = number
  default     = 443
}

variable "service_sizes" {
  description = "Fargate CPU units, memory (MiB) and task count of each service."
  type = map(object({
    cpu           = number
    memory        = number
    desired_count = number
  }))
  default = {
    worker        = { cpu = 1024, memory = 2048, desired_count = 2 }
    drift         = { cpu = 512, memory = 2048, desired_count = 1 }
    trainer       = { cpu = 2048, memory = 8192, desired_count = 1 }
    "lake-writer" = { cpu = 512, memory = 1024, desired_count = 1 }
  }

  validation {
    condition     = toset(keys(var.service_sizes)) == toset(["worker", "drift", "trainer", "lake-writer"])
    error_message = "service_sizes: exactly the keys worker, drift, trainer and lake-writer."
  }
}

variable "service_commands" {
  description = "Overrides of a service's command (keys: worker, drift, trainer, lake-writer)."
  type        = map(list(string))
  default     = {}
}

variable "extra_environment" {
  description = "More FRAUDSTREAM_* settings for every service (plain values; secrets go in task_secrets)."
  type        = map(string)
  default     = {}
}

variable "task_secrets" {
  description = "More secret settings for every service: variable name => Secrets Manager or SSM parameter ARN (never a value)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for arn in values(var.task_secrets) : can(regex("^arn:[a-z-]+:(secretsmanager|ssm):", arn))])
    error_message = "task_secrets: every value must be a Secrets Manager secret or SSM parameter ARN."
  }
}

variable "secrets_kms_key_arns" {
  description = "Customer-managed KMS keys that encrypt the secrets named in task_secrets or external_kafka_password_secret_arn."
  type        = list(string)
  default     = []
}

variable "log_level" {
  description = "Python logging level of the services."
  type        = string
  default     = "INFO"
}

variable "log_retention_days" {
  description = "How long CloudWatch keeps the services' logs."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days: one of the values CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

# --- the bucket -------------------------------------------------------------------------------

variable "lake_prefix" {
  description = "Key prefix of the lake (transactions and labels by date)."
  type        = string
  default     = "lake"
}

variable "models_prefix" {
  description = "Key prefix of model artifacts (point the MLflow server's artifact root here)."
  type        = string
  default     = "models"
}

variable "reports_prefix" {
  description = "Key prefix of drift reports and the drift flag."
  type        = string
  default     = "reports"
}

variable "noncurrent_version_days" {
  description = "Days an overwritten or deleted object version is kept before it expires."
  type        = number
  default     = 90
}
