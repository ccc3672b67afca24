#!/usr/bin/env bash
# @describe Build and package a Java application as a versioned release artifact.
# Runs the Maven release build of one of the team's Java services (simulated here): compile,
# unit tests, package the fat JAR and publish it to the artifact repository under the given
# version. The version must be a plain semantic version such as 2.4.1.
#
# @arg app![price-service|loyalty-api|inventory-sync|receipt-printer] Application to package
# @arg version! Release version, MAJOR.MINOR.PATCH (e.g. 2.4.1)
# @option --jdk[=21|17] JDK to build with
# @flag --skip-tests Skip the unit tests (only for an urgent hotfix)
# @example !java package price-service 2.4.1
# @example !java package loyalty-api 1.9.0 --jdk 17 --skip-tests
set -euo pipefail

app="${OPSROOM_ARG_APP:-}"
version="${OPSROOM_ARG_VERSION:-}"
jdk="${OPSROOM_ARG_JDK:-21}"
skip_tests="${OPSROOM_ARG_SKIP_TESTS:-0}"

if [[ -z "$app" ]]; then
  echo "error: which application? e.g. !java package price-service 2.4.1" >&2
  exit 2
fi
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "error: version '${version}' is not MAJOR.MINOR.PATCH (e.g. 2.4.1)" >&2
  exit 2
fi

group="com.retail.${app//-/}"
line="[INFO] ------------------------------------------------------------------------"
echo "[INFO] Scanning for projects..."
echo "[INFO] Using JDK ${jdk} (Temurin ${jdk}.0.5+11)"
echo "[INFO]"
echo "[INFO] -----------------< ${group}:${app} >-----------------"
echo "[INFO] Building ${app} ${version}"
echo "[INFO] --------------------------------[ jar ]---------------------------------"
sleep 0.2
echo "[INFO] --- maven-resources-plugin:3.3.1:resources (default-resources) @ ${app} ---"
echo "[INFO] Copying 14 resources"
echo "[INFO] --- maven-compiler-plugin:3.13.0:compile (default-compile) @ ${app} ---"
echo "[INFO] Compiling 187 source files with javac [debug release ${jdk}] to target/classes"
sleep 0.4
if [[ "$skip_tests" == "1" ]]; then
  echo "[WARNING] Tests are skipped."
else
  echo "[INFO] --- maven-surefire-plugin:3.2.5:test (default-test) @ ${app} ---"
  echo "[INFO]  T E S T S"
  sleep 0.5
  echo "[INFO] Tests run: 412, Failures: 0, Errors: 0, Skipped: 3, Time elapsed: 8.214 s"
fi
echo "[INFO] --- maven-jar-plugin:3.4.1:jar (default-jar) @ ${app} ---"
echo "[INFO] Building jar: target/${app}-${version}.jar"
echo "[INFO] --- spring-boot-maven-plugin:3.3.4:repackage (repackage) @ ${app} ---"
sleep 0.2
echo "[INFO] --- maven-deploy-plugin:3.1.2:deploy (default-deploy) @ ${app} ---"
echo "[INFO] Uploaded to releases: https://nexus.corp.example/repository/releases/${group//.//}/${app}/${version}/${app}-${version}.jar (48 MB)"
echo "$line"
echo "[INFO] BUILD SUCCESS"
echo "$line"
echo "[INFO] Total time:  41.322 s"
