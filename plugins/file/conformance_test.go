package file_test

import (
	"net/url"
	"testing"

	"github.com/musterhq/muster/plugins/file"
	"github.com/musterhq/muster/servicegroup/drivertest"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Backend{
		Name: "file",
		URL: func(t testing.TB) string {
			return (&url.URL{Scheme: "file", Path: t.TempDir()}).String()
		},
		// A directory under a regular file can never be created.
		UnreachableURL: "file:///dev/null/x",
		Open:           file.Open,
		Slow:           true,
	})
}
