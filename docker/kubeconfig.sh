#!/bin/sh
# k3s writes a kubeconfig for itself (server https://127.0.0.1:6443); Airflow's containers reach it as
# https://k3s:6443 (a name k3s's certificate carries: --tls-san k3s). Wait for it, then rewrite it.
set -eu
until [ -s /kube/k3s.yaml ]; do sleep 1; done
sed 's#https://127.0.0.1:6443#https://k3s:6443#' /kube/k3s.yaml > /kube/airflow.yaml.tmp
chmod 644 /kube/airflow.yaml.tmp
mv /kube/airflow.yaml.tmp /kube/airflow.yaml
echo "wrote /kube/airflow.yaml"
