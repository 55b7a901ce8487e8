# diskrecord: the reading as a terraform_data resource; with the previous tfstate a new
# reading updates it in place (same reading_id).
resource "terraform_data" "reading" {
  input = {
    mount        = var.mount
    used_percent = var.used_percent
  }
}

output "reading" {
  value = terraform_data.reading.output
}

output "reading_id" {
  value = terraform_data.reading.id
}
