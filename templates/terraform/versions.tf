terraform {
  # terraform_data is built in from 1.4 on
  required_version = ">= 1.4"
}
