package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/iotpay/iotpay/device"
	devhttps "github.com/iotpay/iotpay/device/https"
	devmqtt "github.com/iotpay/iotpay/device/mqtt"
)

// payTransport connects a device to the platform: over HTTPS when
// httpsURL is set, else over MQTT to broker.
func payTransport(ctx context.Context, id *device.Identity, broker, httpsURL string) (device.Transport, io.Closer, error) {
	if httpsURL != "" {
		host, err := urlHost(httpsURL)
		if err != nil {
			return nil, nil, err
		}
		t, err := devhttps.New(devhttps.Config{URL: httpsURL, TLS: id.TLSConfig(host)})
		return t, t, err
	}
	host := (&url.URL{Host: broker}).Hostname()
	t, err := devmqtt.Dial(ctx, devmqtt.Config{Addr: broker, TLS: id.TLSConfig(host), DeviceID: id.ID})
	return t, t, err
}

func urlHost(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("--https must be https://host:port")
	}
	return u.Hostname(), nil
}

// deviceRotate renews the device's TLS certificate over EST
// (simplereenroll), authenticated by the current one, and saves it.
func deviceRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("iotpay device rotate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "enrolled device directory (required)")
	httpsURL := fs.String("https", "https://127.0.0.1:8443", "platform HTTPS device endpoint (EST)")
	ksSpec := fs.String("keystore", "soft", keystoreUsage+"; as at enrollment")
	ifDue := fs.Bool("if-due", false, "renew only once 2/3 of the certificate's life has passed (for a periodic job)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("device rotate needs --dir")
	}
	host, err := urlHost(*httpsURL)
	if err != nil {
		return err
	}
	en, keys, id, err := loadDevice(*ksSpec, *dir)
	if err != nil {
		return err
	}
	defer keys.Close()
	if due := device.RenewalDue(id.TLSCert()); *ifDue && time.Now().Before(due) {
		fmt.Fprintf(stdout, "certificate of %s valid until %s; renewal due from %s: nothing to do\n",
			id.ID, id.TLSCert().NotAfter.UTC().Format(time.RFC3339), due.UTC().Format(time.RFC3339))
		return nil
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: id.TLSConfig(host)}}
	defer client.CloseIdleConnections()
	_, next, err := device.Rotate(ctx, client, *httpsURL, *dir, en, id)
	if err != nil {
		return err
	}
	cert := next.TLSCert()
	fmt.Fprintf(stdout, "certificate renewed for %s: serial %x, valid until %s; the previous one stays valid until it expires\n",
		id.ID, cert.SerialNumber, cert.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// loadDevice opens an enrolled device directory: its enrollment, its keys
// (the caller closes them) and the identity they make.
func loadDevice(ksSpec, dir string) (*device.Enrollment, *device.Keys, *device.Identity, error) {
	en, err := device.LoadEnrollment(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, _, err := deviceKeys(ksSpec, dir, en.Suite, false)
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := keys.Identity(en)
	if err != nil {
		keys.Close()
		return nil, nil, nil, err
	}
	return en, keys, id, nil
}
