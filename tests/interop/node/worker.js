///////////////////
// node.js Worker: the README's example (seed lines ~115-160) nearly verbatim.
//
// Changes, all marked "interop:": host/port from argv, the root from JC_ROOT, sendEmail is a
// stub that succeeds, the worker logs to the job before job.done(), results are printed as
// JSON lines, and after JC_EXPECT jobs the queue shuts down and the script exits.
// Login: like the README, DDPlogin(ddp, cb): METEOR_TOKEN from the environment, else it would
// prompt (the test closes stdin, so a prompt fails the run).

var DDP = require('ddp');
var DDPlogin = require('ddp-login');
var Job = require('meteor-job')
var lib = require('./lib'); // interop: output, timeout, configuration

// Job here has essentially the same API as jobCollection on Meteor
// In fact, Meteor jobCollection is built on top of the node-job npm package

var ddp = new DDP({
   host: lib.config.host, // interop: was "meteor.mydomain.com"
   port: lib.config.port, // interop: was 3000
   use_ejson: true
});

Job.setDDP(ddp);

var expect = Number(process.env.JC_EXPECT || 1); // interop
var handled = 0; // interop

// interop: the stub mail sender
function sendEmail(address, subject, message, callback) {
   lib.emit('send', {address: address, subject: subject, message: message});
   setImmediate(callback, null);
}

ddp.connect(function (err) {
   if (err) throw err;
   lib.emit('connected', {session: ddp.session}); // interop
   // This will prompt email/password if an authToken
   // isn't available in the process environment
   DDPlogin(ddp, function (err, token) {
      if (err) throw err;
      lib.emit('login', {id: token.id, type: token.type}); // interop
      workers = Job.processJobs(lib.config.root, 'sendEmail', function (job, cb) {
         // This will only be called if a 'sendEmail' job is obtained
         lib.emit('job', {id: job.doc._id, runId: job.doc.runId, status: job.doc.status, data: job.data}); // interop
         email = job.data.email // Only one email per job
         sendEmail(email.address, email.subject, email.message, function(err) {
            if (err) {
               job.log("Sending failed with error" + err, {level: 'warning'});
               job.fail("" + err);
               cb(); // interop: (was after the if/else)
            } else {
               // interop: log to the job, then done, each waiting for its reply
               job.log("Sent email to " + email.address, {level: 'success', data: {to: email.address}}, function (err, logged) {
                  if (err) lib.die('job.log failed: ' + JSON.stringify(lib.errorFields(err)));
                  lib.emit('logged', {id: job.doc._id, result: logged});
                  job.done({sent: email.address}, function (err, done) {
                     if (err) lib.die('job.done failed: ' + JSON.stringify(lib.errorFields(err)));
                     lib.emit('done', {id: job.doc._id, result: done});
                     cb(); // Be sure to invoke the callback when this job has been completed or failed.
                     if (++handled === expect) {
                        workers.shutdown({level: 'soft', quiet: true}, function () {
                           lib.emit('shutdown', {handled: handled});
                           ddp.close();
                           lib.finish();
                        });
                     }
                  });
               });
            }
         });
      });
  });
});
