"""Ansible plugins shipped with gpuhost: modules run on hosts, actions run on the controller."""
