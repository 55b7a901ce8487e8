variable "mount" {
  description = "The mount point measured"
  type        = string
}

variable "used_percent" {
  description = "How full it is, in percent"
  type        = number
}
