// Package deploy holds the tests of cosell's deployment artefacts: the root
// Dockerfile, docker-compose.yml and the Kubernetes manifests under
// deploy/k8s. No Docker engine or cluster runs where the tests run, so they
// use the real parsers instead (compose-go, kustomize, the Kubernetes API
// types) and start the real binaries with the environment the compose file
// gives them.
package deploy
