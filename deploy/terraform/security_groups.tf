# Who may talk to whom, and nothing more: clients -> ALB (80/443) -> worker (6066); tasks ->
# Kafka, MLflow and AWS APIs (443); Kafka clients -> MSK (9096, SASL/SCRAM over TLS).

resource "aws_security_group" "alb" {
  name        = "${local.name}-alb"
  description = "fraudstream load balancer: allowed clients in, the worker out"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-alb" }
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = toset(var.alb_allowed_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = local.https ? "HTTP, redirected to HTTPS" : "HTTP"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = local.https ? toset(var.alb_allowed_cidrs) : toset([])
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "alb_to_worker" {
  security_group_id            = aws_security_group.alb.id
  description                  = "to the worker's web port"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = local.worker_port
  to_port                      = local.worker_port
}

resource "aws_security_group" "tasks" {
  name        = "${local.name}-tasks"
  description = "fraudstream ECS tasks: the ALB in, Kafka, MLflow and AWS APIs out"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-tasks" }
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_alb" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "the load balancer to the worker's web port"
  referenced_security_group_id = aws_security_group.alb.id
  ip_protocol                  = "tcp"
  from_port                    = local.worker_port
  to_port                      = local.worker_port
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "AWS APIs (ECR, S3, logs, secrets) and MLflow over HTTPS"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "tasks_mlflow" {
  count             = var.mlflow_port == 443 ? 0 : 1
  security_group_id = aws_security_group.tasks.id
  description       = "MLflow tracking server"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = var.mlflow_port
  to_port           = var.mlflow_port
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_msk" {
  count                        = local.msk ? 1 : 0
  security_group_id            = aws_security_group.tasks.id
  description                  = "MSK brokers, SASL/SCRAM over TLS"
  referenced_security_group_id = aws_security_group.msk[0].id
  ip_protocol                  = "tcp"
  from_port                    = 9096
  to_port                      = 9096
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_external_kafka" {
  for_each = local.msk ? {} : {
    for pair in setproduct(var.external_kafka_cidrs, var.external_kafka_ports) : "${pair[0]}:${pair[1]}" => pair
  }
  security_group_id = aws_security_group.tasks.id
  description       = "external Kafka brokers"
  cidr_ipv4         = each.value[0]
  ip_protocol       = "tcp"
  from_port         = each.value[1]
  to_port           = each.value[1]
}

resource "aws_security_group" "msk" {
  count       = local.msk ? 1 : 0
  name        = "${local.name}-msk"
  description = "fraudstream MSK brokers: the tasks in"
  vpc_id      = aws_vpc.main.id
  tags        = { Name = "${local.name}-msk" }
}

resource "aws_vpc_security_group_ingress_rule" "msk_from_tasks" {
  count                        = local.msk ? 1 : 0
  security_group_id            = aws_security_group.msk[0].id
  description                  = "Kafka clients, SASL/SCRAM over TLS"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 9096
  to_port                      = 9096
}

# Replication between the brokers.
resource "aws_vpc_security_group_ingress_rule" "msk_between_brokers" {
  count                        = local.msk ? 1 : 0
  security_group_id            = aws_security_group.msk[0].id
  description                  = "broker to broker"
  referenced_security_group_id = aws_security_group.msk[0].id
  ip_protocol                  = "tcp"
  from_port                    = 0
  to_port                      = 65535
}

resource "aws_vpc_security_group_egress_rule" "msk_between_brokers" {
  count                        = local.msk ? 1 : 0
  security_group_id            = aws_security_group.msk[0].id
  description                  = "broker to broker"
  referenced_security_group_id = aws_security_group.msk[0].id
  ip_protocol                  = "tcp"
  from_port                    = 0
  to_port                      = 65535
}
