output "bucket_name" {
  description = "The config's store.aws-s3-storage.bucket."
  value       = aws_s3_bucket.packages.bucket
}

output "bucket_arn" {
  value = aws_s3_bucket.packages.arn
}

output "table_name" {
  description = "The config's store.aws-s3-storage.dynamoTableName."
  value       = aws_dynamodb_table.registry.name
}

output "table_arn" {
  value = aws_dynamodb_table.registry.arn
}

output "policy_arn" {
  description = "The least-privilege policy for `tarhold serve`; attach it to the instances' role."
  value       = aws_iam_policy.tarhold.arn
}

output "policy_json" {
  value = data.aws_iam_policy_document.tarhold.json
}

output "role_arn" {
  description = "With IRSA: the role for the eks.amazonaws.com/role-arn annotation of the service account."
  value       = local.irsa ? aws_iam_role.tarhold[0].arn : null
}

output "store_config" {
  description = "The store section of config.yaml for these resources."
  value = yamlencode({
    store = {
      "aws-s3-storage" = {
        bucket          = aws_s3_bucket.packages.bucket
        keyPrefix       = local.object_prefix
        region          = var.region
        dynamoTableName = aws_dynamodb_table.registry.name
      }
    }
  })
}
