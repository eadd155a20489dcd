// SPDX-License-Identifier: Apache-2.0

// Package jsclient runs JetStream workflows through nats.go, the Go client,
// against a live server. The workflows are a file stream consumed by a
// durable pull consumer, a work-queue stream shared by three workers, a
// key-value bucket, and a durable consumer that resumes after a server
// restart. The tests connect to the server at SHOAL_GO_URL. run.sh starts
// that server, restarts it between the two restart tests and stops it.
package jsclient
