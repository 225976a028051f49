// AMI client of crates/carillon/tests/ami.rs, on asterisk-manager (npm).
//
// Usage: node asterisk_manager_client.js HOST PORT SECONDS
// (NODE_PATH names the node_modules holding asterisk-manager)
//
// Prints one JSON object per line for the Rust test:
//   {"kind":"wrong_login",...}  the library's login with a wrong secret
//   {"kind":"login",...}        the library's login with the right one
//   {"kind":"ping",...}         Ping's response
//   {"kind":"unknown",...}      an action the switch does not offer
//   {"kind":"ready"}            listening; the test places a call now
//   {"kind":"event",...}        every event (keys lower-cased by the library)
//   {"kind":"list",...}         CoreShowChannels, sent once both channels are bridged
// Ends after two Hangup events, or after SECONDS.
'use strict';
const AsteriskManager = require('asterisk-manager');

const [host, port, seconds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const out = (kind, fields) => console.log(JSON.stringify(Object.assign({ kind }, fields || {})));

function login(secret) {
  return new Promise((resolve) => {
    // Without a port the constructor does not connect: connect, then log
    // in through the library, which calls back with an error or not.
    const ami = new AsteriskManager(undefined, host, 'dialer', secret, true);
    ami.connect(port, host, () => ami.login((err) => resolve({ ami, err: err || null })));
  });
}

function action(ami, req) {
  return new Promise((resolve) => ami.action(req, (err, res) => resolve(err || res)));
}

(async () => {
  const timer = setTimeout(() => { out('timeout'); process.exit(0); }, seconds * 1000);

  const wrong = await login('not-the-secret');
  out('wrong_login', { err: wrong.err });
  wrong.ami.disconnect();

  const { ami, err } = await login('changeme-ami');
  out('login', { err });
  out('ping', { response: await action(ami, { action: 'Ping' }) });
  out('unknown', { response: await action(ami, { action: 'Originate', channel: 'PJSIP/101' }) });

  // List items arrive as events with the list's ActionID.
  let listing = null;
  const packets = [];
  let entered = 0;
  let hangups = 0;
  ami.on('managerevent', (evt) => {
    if (listing && evt.actionid === listing) {
      packets.push(evt);
      if (evt.event === 'CoreShowChannelsComplete') {
        out('list', { packets });
        listing = null;
      }
      return;
    }
    out('event', { headers: evt });
    if (evt.event === 'BridgeEnter' && ++entered === 2) {
      listing = 'list-' + Date.now();
      ami.action({ action: 'CoreShowChannels', actionid: listing }, (e, res) => out('list_response', { response: e || res }));
    }
    if (evt.event === 'Hangup' && ++hangups === 2) {
      setTimeout(() => { clearTimeout(timer); ami.disconnect(); process.exit(0); }, 300);
    }
  });
  out('ready');
})();
