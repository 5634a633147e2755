set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl enable fleet-cfssl.service
	systemctl restart fleet-cfssl.service
	exit 0
fi
pidfile=/run/fleet-cfssl.pid
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
	pid=$(cat "$pidfile"); kill "$pid"
	i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fi
umask 077
setsid /usr/local/bin/cfssl serve -address=198.18.0.16 -port=8888 -ca=/etc/cfssl/ca.pem -ca-key=/etc/cfssl/ca-key.pem -config=/etc/cfssl/config.json -db-config=/etc/cfssl/db-config.json -responder=/etc/cfssl/ocsp.pem -responder-key=/etc/cfssl/ocsp-key.pem -disable=sign,newcert,newkey,init_ca,bundle,scan,scaninfo,certinfo,ocspsign,revoke,gencrl,crl,certadd,/ >>/var/lib/cfssl/cfssl.log 2>&1 </dev/null &
echo $! > "$pidfile"
