// Package proto is the gRPC contract between the muster plugin host
// (plugins/host) and a backend plugin (plugins/serve): muster.proto, its
// generated code, and the mapping of driver errors to and from gRPC
// statuses, which keeps each driver sentinel and the plugin's message text.
//
// Regenerate with gen.sh after editing muster.proto.
package proto

//go:generate ./gen.sh
