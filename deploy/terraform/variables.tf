variable "region" {
  description = "AWS region of the bucket and the table (the config's region / dynamoRegion)."
  type        = string
}

variable "bucket_name" {
  description = "S3 bucket for packuments and tarballs (the config's bucket)."
  type        = string
}

variable "key_prefix" {
  description = "Prefix of every key tarhold writes (the config's keyPrefix); \"\" for none."
  type        = string
  default     = "tarhold/"
}

variable "table_name" {
  description = "DynamoDB table for the registry state (the config's dynamoTableName)."
  type        = string
  default     = "tarhold"
}

variable "public_read_acl" {
  description = "Allow object ACLs, for `tarballACL: public-read` (tarballs served by a CDN or straight from S3)."
  type        = bool
  default     = false
}

variable "versioning" {
  description = "Keep previous versions of overwritten and deleted objects."
  type        = bool
  default     = false
}

variable "noncurrent_version_days" {
  description = "With versioning, how long previous versions are kept."
  type        = number
  default     = 30
}

variable "point_in_time_recovery" {
  description = "DynamoDB point-in-time recovery for the registry state (users, tokens, package list)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse to delete the DynamoDB table until this is turned off."
  type        = bool
  default     = true
}

variable "eks_oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider; \"\" creates no IRSA role (attach the policy yourself)."
  type        = string
  default     = ""
}

variable "eks_oidc_issuer" {
  description = "The cluster's OIDC issuer without https:// (oidc.eks.REGION.amazonaws.com/id/ID)."
  type        = string
  default     = ""
}

variable "kubernetes_namespace" {
  description = "Namespace the tarhold pods run in."
  type        = string
  default     = "tarhold"
}

variable "kubernetes_service_account" {
  description = "Service account of the tarhold pods (deploy/kubernetes/serviceaccount.yaml)."
  type        = string
  default     = "tarhold"
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
