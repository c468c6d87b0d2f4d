# fraudstream on AWS: a VPC over two zones, the image in ECR, the worker, drift monitor, training
# consumer and lake writer as Fargate services, Kafka (MSK, or any cluster by address), one S3
# bucket for the lake, models and drift reports, and an ALB in front of the worker's /predict.
#
#   terraform init -backend-config=bucket=STATE_BUCKET -backend-config=key=fraudstream/prod.tfstate \
#     -backend-config=region=REGION -backend-config=use_lockfile=true
#   terraform apply -var image_tag=sha-0123abcd -var 'alb_allowed_cidrs=["203.0.113.0/24"]' \
#     -var mlflow_tracking_uri=https://mlflow.example.com
#
# CD (.github/workflows/cd.yml) runs exactly this on every push to main and every version tag.
# 1.11: write-only arguments keep the generated Kafka password out of the state.

terraform {
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7, >= 3.7.1" # 3.7.1: the ephemeral random_password
    }
  }

  # Partial configuration: the state bucket, key and region come from -backend-config at init.
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region
  # A guard against applying with credentials for the wrong account.
  allowed_account_ids = var.aws_account_id == "" ? null : [var.aws_account_id]

  default_tags {
    tags = merge(var.tags, {
      Project     = var.project
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}
