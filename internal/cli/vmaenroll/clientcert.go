package vmaenroll

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/oma-enroll/oma-enroll/internal/atomicfile"
	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
	"github.com/oma-enroll/oma-enroll/internal/vmaauth"
)

// Files client-cert writes.
const (
	clientCertFile = "vma-client.crt"
	clientKeyFile  = "vma-client.key"
)

func newClientCertCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "client-cert",
		Short: "Write this VMA's key as a PEM client certificate, for curl",
		Long: `Write this VMA's key (id_ed25519 in --config-dir) as the self-signed TLS
client certificate the OMA's VMA endpoints accept (vma-client.crt) and the
key in PKCS#8 PEM (vma-client.key, mode 0600), into --out (the config
directory by default), so that curl and other HTTPS clients can call
GET /api/v1/vma/self (docs/rotation.md shows the whole curl command, with
the OMA's key pinned by --pinnedpubkey).

vma-client.key is a second copy of this VMA's private key: keep it where
id_ed25519 is, and run client-cert again after vma-enroll rotate (the files
do not follow a rotation).`,
		Example: `  vma-enroll client-cert
  curl -sk --cert /etc/vma-enroll/vma-client.crt \
      --key /etc/vma-enroll/vma-client.key \
      --pinnedpubkey sha256//<base64> https://oma.example.com/api/v1/vma/self`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(cmd.Root())
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(cfg.ConfigDir)
			if err != nil {
				return err
			}
			out, _ := cmd.Flags().GetString("out")
			if out == "" {
				out = dir
			}
			if err := checkKeyTrust(dir); err != nil {
				return cmdutil.Exit(cmdutil.ExitFailure, err)
			}
			priv, err := readKey(keyPath(dir))
			if err != nil {
				return cmdutil.Exit(cmdutil.ExitFailure, fmt.Errorf("read this VMA's key: %w", err))
			}
			cert, err := vmaauth.ClientCertificate(priv)
			if err != nil {
				return err
			}
			der, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				return err
			}
			certPath, keyOut := filepath.Join(out, clientCertFile), filepath.Join(out, clientKeyFile)
			if err := atomicfile.WriteFile(keyOut, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				return cmdutil.Exit(cmdutil.ExitFailure, err)
			}
			if err := atomicfile.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
				return cmdutil.Exit(cmdutil.ExitFailure, err)
			}
			fmt.Fprintf(f.IO.Out, "%s\n%s\n", certPath, keyOut)
			fmt.Fprintf(f.IO.ErrOut, "Wrote the client certificate of key %s; run this again after vma-enroll rotate.\n", fingerprintOf(priv))
			return nil
		},
	}
	cmd.Flags().String("out", "", "directory for vma-client.crt and vma-client.key (default: --config-dir)")
	return cmd
}
