package servicegroup

import (
	"fmt"

	"github.com/musterhq/muster/servicegroup/driver"
)

// pluginFactory starts sessions in plugin processes. TEMPORARY until plugins/host lands.
func pluginFactory(cfg Config, scheme string) (driver.Factory, error) {
	return nil, fmt.Errorf("plugin mode: %w", driver.ErrNotSupported)
}
