# The S3 bucket and the DynamoDB table tarhold runs on: the same resources
# `tarhold init` creates (storage/provision.py), declared for teams that
# manage AWS with Terraform. No backend block: configure state storage the
# way your team does (a backend override file, or -backend-config).

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

provider "aws" {
  region = var.region
}

locals {
  # "tarhold/" for keyPrefix "tarhold" or "tarhold/"; "" without a prefix.
  object_prefix = trim(var.key_prefix, "/") == "" ? "" : "${trim(var.key_prefix, "/")}/"
}

# -- package files ---------------------------------------------------------

resource "aws_s3_bucket" "packages" {
  bucket = var.bucket_name
  tags   = var.tags
}

# Private by default. `tarballACL: public-read` (tarballs fetched by a CDN
# or clients straight from S3) needs object ACLs, so public_read_acl = true
# lets object ACLs through; bucket policies stay blocked either way.
resource "aws_s3_bucket_ownership_controls" "packages" {
  bucket = aws_s3_bucket.packages.id
  rule {
    object_ownership = var.public_read_acl ? "BucketOwnerPreferred" : "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "packages" {
  bucket                  = aws_s3_bucket.packages.id
  block_public_acls       = !var.public_read_acl
  ignore_public_acls      = !var.public_read_acl
  block_public_policy     = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "packages" {
  bucket = aws_s3_bucket.packages.id
  rule {
    apply_server_side_encryption_by_default {
      # SSE-S3: presigned tarball redirects work without KMS permissions.
      sse_algorithm = "AES256"
    }
  }
}

# Optional: keeps overwritten and deleted packuments and tarballs
# (unpublish) recoverable for noncurrent_version_days.
resource "aws_s3_bucket_versioning" "packages" {
  count  = var.versioning ? 1 : 0
  bucket = aws_s3_bucket.packages.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "packages" {
  bucket = aws_s3_bucket.packages.id

  # A crashed instance can leave a multipart tarball upload behind; its
  # parts are billed until aborted. Same rule as `tarhold init` creates.
  rule {
    id     = "tarhold-abort-incomplete-uploads"
    status = "Enabled"
    filter {
      prefix = local.object_prefix
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  rule {
    id     = "tarhold-expire-noncurrent-versions"
    status = var.versioning ? "Enabled" : "Disabled"
    filter {
      prefix = local.object_prefix
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.packages]
}

# -- registry state ----------------------------------------------------------

# One table, single-table design (pk/sk strings); expired items (tokens,
# login sessions) carry `expires` and are removed by DynamoDB's TTL.
resource "aws_dynamodb_table" "registry" {
  name                        = var.table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  ttl {
    attribute_name = "expires"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  tags = var.tags
}
