# Least privilege for the instances that run `tarhold serve`: the same
# statements `tarhold init` prints (storage/provision.py iam_policy). The
# rights to create the bucket and the table stay with whoever applies this.

data "aws_iam_policy_document" "tarhold" {
  statement {
    sid    = "TarholdPackageFiles"
    effect = "Allow"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:DeleteObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${aws_s3_bucket.packages.arn}/${local.object_prefix}*"]
  }

  # `tarballACL: public-read` sets an ACL on every tarball it writes.
  dynamic "statement" {
    for_each = var.public_read_acl ? [1] : []
    content {
      sid       = "TarholdTarballAcl"
      effect    = "Allow"
      actions   = ["s3:PutObjectAcl"]
      resources = ["${aws_s3_bucket.packages.arn}/${local.object_prefix}*"]
    }
  }

  statement {
    sid       = "TarholdListPackages"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.packages.arn]

    dynamic "condition" {
      for_each = local.object_prefix == "" ? [] : [1]
      content {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["${local.object_prefix}*"]
      }
    }
  }

  # Each start aborts its prefix's abandoned multipart uploads; s3:prefix
  # does not narrow this listing, so it is a statement of its own.
  statement {
    sid       = "TarholdAbandonedUploads"
    effect    = "Allow"
    actions   = ["s3:ListBucketMultipartUploads"]
    resources = [aws_s3_bucket.packages.arn]
  }

  statement {
    sid    = "TarholdRegistryDatabase"
    effect = "Allow"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
      "dynamodb:Query",
      "dynamodb:DescribeTable",
    ]
    resources = [aws_dynamodb_table.registry.arn]
  }
}

resource "aws_iam_policy" "tarhold" {
  name        = "tarhold-${var.table_name}"
  description = "tarhold serve: package files in s3://${var.bucket_name}/${local.object_prefix}, state in DynamoDB ${var.table_name}"
  policy      = data.aws_iam_policy_document.tarhold.json
  tags        = var.tags
}

# -- IRSA: the role the tarhold pods' service account assumes ----------------

locals {
  irsa = var.eks_oidc_provider_arn != ""
}

data "aws_iam_policy_document" "irsa_trust" {
  count = local.irsa ? 1 : 0

  statement {
    sid     = "TarholdServiceAccount"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.eks_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_issuer}:sub"
      values   = ["system:serviceaccount:${var.kubernetes_namespace}:${var.kubernetes_service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "tarhold" {
  count              = local.irsa ? 1 : 0
  name               = "tarhold-${var.kubernetes_namespace}"
  assume_role_policy = data.aws_iam_policy_document.irsa_trust[0].json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "tarhold" {
  count      = local.irsa ? 1 : 0
  role       = aws_iam_role.tarhold[0].name
  policy_arn = aws_iam_policy.tarhold.arn
}
