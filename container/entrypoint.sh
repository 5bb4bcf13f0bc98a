#!/bin/sh
# The image's entry point: its first word chooses what the container runs.
#   node [openmfa serve options]          the node (default); its data directory is made on the
#                                         first start, listening on every address
#   portal [openmfa portal serve options] the User Portal, with portal.toml in the data directory
#   mobile [openmfa mobile serve options] the Mobile App Web Service, with mobile.toml there
#   anything else                         an openmfa command (`user add alice`, `migrate`, ...;
#                                         `portal default-config`: a word after portal/mobile
#                                         that is not an option is openmfa's own subcommand)
# The data directory is $OPENMFA_DATA_DIR (/var/lib/openmfa, the image's volume). Shipped
# defaults listen on 127.0.0.1, which nothing outside a container reaches: what this script
# writes listens on 0.0.0.0 instead. A file that is already there is never changed.
set -eu
data="${OPENMFA_DATA_DIR:-/var/lib/openmfa}"

# service_config NAME PORT: NAME.toml in the data directory, made on the first start from the
# shipped one, listening on 0.0.0.0:PORT, its API key in NAME.key beside it.
service_config() {
  config="$data/$1.toml"
  if [ ! -e "$config" ]; then
    openmfa "$1" default-config \
      | sed -e "s/^listen = \"127.0.0.1:$2\"$/listen = \"0.0.0.0:$2\"/" \
        -e "s/^api_key_file = \"\"$/api_key_file = \"$1.key\"/" >"$config.new"
    mv "$config.new" "$config"
    echo "openmfa-entrypoint: wrote $config (listening on 0.0.0.0:$2): set nodes to the" \
      "nodes' SDK URLs and put a key of scope $1 (openmfa apikey create $1 --scope $1, on" \
      "a node) in $data/$1.key, mode 0600" >&2
  fi
}

command="${1:-node}"
[ $# -gt 0 ] && shift
case "$command" in
  node)
    if [ ! -e "$data/openmfa.key" ]; then
      # First start: a new node (data file, key file, server.toml, first admin key, printed).
      made_config=no
      [ -e "$data/server.toml" ] || made_config=yes
      openmfa init
      if [ "$made_config" = yes ]; then
        sed -i -e 's/^listen = "127.0.0.1:8480"$/listen = "0.0.0.0:8480"/' \
          -e 's/^listen = "127.0.0.1:1812"$/listen = "0.0.0.0:1812"/' "$data/server.toml"
      fi
    fi
    exec openmfa serve "$@"
    ;;
  portal | mobile)
    case "${1:-}" in
      "" | -*) ;;
      *) exec openmfa "$command" "$@" ;;
    esac
    service_config "$command" "$([ "$command" = portal ] && echo 8500 || echo 8490)"
    exec openmfa "$command" serve --config "$data/$command.toml" "$@"
    ;;
  *)
    exec openmfa "$command" "$@"
    ;;
esac
