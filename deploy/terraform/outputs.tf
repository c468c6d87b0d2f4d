output "service_url" {
  description = "Base URL of the worker's /predict and /health."
  value       = "${local.https ? "https" : "http"}://${aws_lb.main.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the load balancer (point a CNAME or alias at it)."
  value       = aws_lb.main.dns_name
}

output "ecr_repository_url" {
  description = "Where CD pushes the image."
  value       = aws_ecr_repository.app.repository_url
}

output "image" {
  description = "The image the services run."
  value       = local.image
}

output "ecs_cluster_name" {
  description = "ECS cluster of the services."
  value       = aws_ecs_cluster.main.name
}

output "ecs_service_names" {
  description = "ECS service names (worker, drift, trainer, lake-writer); CD waits for them to settle."
  value       = [for service in aws_ecs_service.service : service.name]
}

output "data_bucket" {
  description = "The object store's bucket."
  value       = aws_s3_bucket.data.bucket
}

output "store_uri" {
  description = "FRAUDSTREAM_STORE__URI of the services."
  value       = "s3://${aws_s3_bucket.data.bucket}"
}

output "kafka_bootstrap_servers" {
  description = "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS of the services."
  value       = local.kafka_settings.bootstrap_servers
}

output "kafka_scram_secret_arn" {
  description = "With kafka_mode = msk: the Secrets Manager secret holding the SCRAM user and password."
  value       = local.msk ? aws_secretsmanager_secret.msk_scram[0].arn : null
}

output "log_groups" {
  description = "CloudWatch log group of each service."
  value       = { for service, group in aws_cloudwatch_log_group.service : service => group.name }
}

output "task_role_arns" {
  description = "IAM role of each service's code."
  value       = { for service, role in aws_iam_role.task : service => role.arn }
}

output "vpc_id" {
  description = "The VPC."
  value       = aws_vpc.main.id
}

output "private_subnet_ids" {
  description = "Subnets of the tasks (and MSK brokers)."
  value       = aws_subnet.private[*].id
}
