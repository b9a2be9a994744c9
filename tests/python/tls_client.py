"""The HTTPS listener as a Python app sees it, with httpx (HTTP/1.1 and
HTTP/2 by ALPN) and the standard library's ssl.

usage:
  tls_client.py certs DIR
      writes a test CA (ca.pem), two server certificates for 127.0.0.1
      (server.pem/.key, server2.pem/.key) and a client certificate
      (client.pem/.key); keys mode 0600
  tls_client.py fhir BASE CA CLIENT_ID SECRET TENANT
      gets a token and reads a Patient over HTTP/1.1 and over HTTP/2; prints
      JSON with each exchange's status and protocol version
  tls_client.py serial HOST PORT CA
      prints the serial number of the certificate the server presents
  tls_client.py keepalive HOST PORT CA TOKEN PATH NEWCERT NEWKEY CERT KEY
      on one HTTP/1.1 connection: a read, then the certificate files replaced,
      then (once new handshakes get the new certificate) another read on
      the same connection; prints JSON
"""

import datetime
import http.client
import ipaddress
import json
import os
import shutil
import socket
import ssl
import sys
import time

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def write_key(path, key):
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_cert(path, cert):
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def issue(ca_cert, ca_key, name, usage, server):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def certs(out):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fhirgate test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_cert(os.path.join(out, "ca.pem"), ca)
    serials = {}
    for stem, usage, server in [
        ("server", ExtendedKeyUsageOID.SERVER_AUTH, True),
        ("server2", ExtendedKeyUsageOID.SERVER_AUTH, True),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH, False),
    ]:
        cert, key = issue(ca, ca_key, stem, usage, server)
        write_cert(os.path.join(out, stem + ".pem"), cert)
        write_key(os.path.join(out, stem + ".key"), key)
        serials[stem] = format(cert.serial_number, "X")
    print(json.dumps(serials))


def fhir(base, ca, client_id, secret, tenant):
    out = {}
    for label, h2 in [("http1", False), ("http2", True)]:
        with httpx.Client(verify=ssl.create_default_context(cafile=ca), http1=not h2, http2=h2) as client:
            token = client.post(
                base + "/oauth2/token",
                data={"grant_type": "client_credentials", "scope": tenant},
                auth=(client_id, secret),
            )
            entry = {"token_status": token.status_code, "token_version": token.http_version}
            if token.status_code == 200:
                access = token.json()["access_token"]
                entry["access_token"] = access
                read = client.get(base + "/stu3/Patient/pat-001", headers={"Authorization": "Bearer " + access})
                entry.update(
                    read_status=read.status_code,
                    read_version=read.http_version,
                    resource_type=read.json().get("resourceType"),
                    hsts=read.headers.get("strict-transport-security"),
                )
            out[label] = entry
    print(json.dumps(out))


def serial(host, port, ca):
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return tls.getpeercert()["serialNumber"]


def keepalive(host, port, ca, token, path, new_cert, new_key, cert, key):
    context = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    headers = {"Authorization": "Bearer " + token}
    conn.request("GET", path, headers=headers)
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    before = serial(host, port, ca)
    # Replaced as a renewal does: each file renamed into place.
    for src, dst in [(new_cert, cert), (new_key, key)]:
        tmp = dst + ".new"
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dst)
    after, waited = before, 0.0
    while after == before and waited < 15:
        time.sleep(0.2)
        waited += 0.2
        after = serial(host, port, ca)
    conn.request("GET", path, headers=headers)
    second = conn.getresponse()
    second.read()
    print(json.dumps({
        "first": first.status, "second": second.status, "same_connection": conn.sock is sock,
        "serial_before": before, "serial_after": after, "waited_seconds": round(waited, 1),
    }))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "certs":
        certs(*args)
    elif cmd == "fhir":
        fhir(*args)
    elif cmd == "serial":
        print(serial(*args))
    elif cmd == "keepalive":
        keepalive(*args)
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
