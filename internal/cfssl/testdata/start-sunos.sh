set -e
svccfg validate "$1"
svccfg import "$1"
state=$(svcs -H -o state svc:/site/fleet-cfssl:default 2>/dev/null || true)
case "$state" in
online) svcadm restart svc:/site/fleet-cfssl:default ;;
maintenance) svcadm clear svc:/site/fleet-cfssl:default; svcadm enable -s svc:/site/fleet-cfssl:default ;;
*) svcadm enable -s svc:/site/fleet-cfssl:default ;;
esac
