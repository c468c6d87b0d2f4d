locals {
  name       = "${var.project}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  azs        = slice(data.aws_availability_zones.available.names, 0, 2)
  msk        = var.kafka_mode == "msk"
  https      = var.certificate_arn != ""

  services    = toset(["worker", "drift", "trainer", "lake-writer"])
  worker_port = 6066
  drift_port  = 6067

  image = "${aws_ecr_repository.app.repository_url}:${var.image_tag}"
}
