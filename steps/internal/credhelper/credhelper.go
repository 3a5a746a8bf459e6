// Package credhelper is the docker credential helpers kaniko's image ships
// (docker-credential-gcr, docker-credential-ecr-login and
// docker-credential-acr-env), run from their upstream libraries inside
// slipway-build. The executor image links their names to slipway-build,
// which runs the helper its argv[0] names: one binary carries the cloud
// SDKs once, where three separately built helpers carried them again.
//
// Each keeps its upstream command line: the docker credential-helper
// protocol (get, store, erase, list, version on os.Args[1], the server URL
// on stdin), -v/--version, and docker-credential-gcr's other subcommands
// (configure-docker, config, gcr-login…).
package credhelper

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime/debug"
	"strings"

	gcrcli "github.com/GoogleCloudPlatform/docker-credential-gcr/v2/cli"
	gcrconfig "github.com/GoogleCloudPlatform/docker-credential-gcr/v2/config"
	ecr "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	ecrconfig "github.com/awslabs/amazon-ecr-credential-helper/ecr-login/config"
	ecrversion "github.com/awslabs/amazon-ecr-credential-helper/ecr-login/version"
	acr "github.com/chrismellard/docker-credential-acr-env/pkg/credhelper"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/google/subcommands"
)

// Module paths, for the versions the helpers report.
const (
	gcrModule = "github.com/GoogleCloudPlatform/docker-credential-gcr/v2"
	ecrModule = "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	acrModule = "github.com/chrismellard/docker-credential-acr-env"
)

// Programs are the helpers by program name; each runs on os.Args and
// exits.
var Programs = map[string]func(){
	"docker-credential-gcr":       GCR,
	"docker-credential-ecr-login": ECRLogin,
	"docker-credential-acr-env":   ACREnv,
}

// moduleVersion is the version of module linked into this binary, as
// `go install module@version` would have stamped the helper's own binary.
func moduleVersion(module string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range info.Deps {
		if d.Path == module {
			if d.Replace != nil {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

// gcrVersion matches the release versions docker-credential-gcr puts into
// the user name it sends with tokens (config's init does the same with
// its own binary's version, which here would be Slipway's).
var gcrVersion = regexp.MustCompile(`^([0-9]+(?:[\._][0-9]+)*)(?:-[0-9]+-[0-9a-f]+)?$`)

// GCR is docker-credential-gcr: upstream's main, which registers its
// subcommands on the default flag set.
func GCR() {
	if v := strings.TrimPrefix(moduleVersion(gcrModule), "v"); v != "" {
		gcrconfig.Version = v
		if m := gcrVersion.FindStringSubmatch(v); m != nil {
			gcrconfig.GcrOAuth2Username = fmt.Sprintf("_dcgcr_%s_token", strings.ReplaceAll(m[1], ".", "_"))
		}
	}
	const (
		gcrGroup             = "GCR authentication"
		dockerCredStoreGroup = "Docker credential store API"
		configGroup          = "Config"
	)
	subcommands.Register(subcommands.HelpCommand(), "")
	subcommands.Register(subcommands.CommandsCommand(), "")
	subcommands.Register(gcrcli.NewStoreSubcommand(), dockerCredStoreGroup)
	subcommands.Register(gcrcli.NewGetSubcommand(), dockerCredStoreGroup)
	subcommands.Register(gcrcli.NewEraseSubcommand(), dockerCredStoreGroup)
	subcommands.Register(gcrcli.NewListSubcommand(), dockerCredStoreGroup)
	subcommands.Register(gcrcli.NewGCRLoginSubcommand(), gcrGroup)
	subcommands.Register(gcrcli.NewGCRLogoutSubcommand(), gcrGroup)
	subcommands.Register(gcrcli.NewDockerConfigSubcommand(), configGroup)
	subcommands.Register(gcrcli.NewConfigSubcommand(), configGroup)
	subcommands.Register(gcrcli.NewVersionSubcommand(), "")
	subcommands.Register(gcrcli.NewClearSubcommand(), "")
	flag.Parse()
	os.Exit(int(subcommands.Execute(context.Background())))
}

// ECRLogin is docker-credential-ecr-login: upstream's main, with -v, its
// log file under AWS_ECR_CACHE_DIR (~/.ecr), and the helper protocol.
func ECRLogin() {
	credentials.Name = "docker-credential-ecr-login"
	credentials.Package = ecrModule
	if v := moduleVersion(ecrModule); v != "" {
		ecrversion.Version = v
	}
	credentials.Version = ecrversion.Version
	credentials.Revision = ecrversion.GitCommitSHA
	version := flag.Bool("v", false, "print version and exit")
	flag.Parse()
	if *version {
		fmt.Printf("amazon-ecr-credential-helper\nVersion:    %s\nGit commit: %s\n", ecrversion.Version, ecrversion.GitCommitSHA)
		os.Exit(0)
	}
	ecrconfig.SetupLogger()
	credentials.Serve(ecr.NewECRHelper())
}

// ACREnv is docker-credential-acr-env: the helper protocol over upstream's
// helper, which takes a service principal, a federated token or a managed
// identity from AZURE_* variables. Upstream wraps it in cobra and viper,
// which read no setting the helper uses; without them, list, store and
// erase answer the helper's own "unimplemented" errors rather than cobra's
// unknown-command one.
func ACREnv() {
	credentials.Name = "docker-credential-acr-env"
	credentials.Package = acrModule
	credentials.Version = moduleVersion(acrModule)
	credentials.Serve(acr.NewACRCredentialsHelper())
}
