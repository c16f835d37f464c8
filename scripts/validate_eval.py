import json,re,sys
raw=open('/work/main/data/trending-papers.txt',encoding='utf-8').read().split('\n')[2:]
while raw and raw[-1]=='': raw.pop()
assert len(raw)%2==0
corpus={}
for i in range(0,len(raw),2):
    t=raw[i]; t=t[len('Subscribe'):] if t.startswith('Subscribe') else t
    corpus[t]=raw[i+1]
assert len(corpus)==168
errs=[]
def load(p): return [json.loads(l) for l in open(p,encoding='utf-8') if l.strip()]
dev=load('/work/main/eval/dev.jsonl')
kinds={}
for n,d in enumerate(dev):
    k=d['kind']; kinds[k]=kinds.get(k,0)+1
    assert set(d)>= {'question','gold','answer_contains','kind'}, d
    for g in d['gold']:
        if g not in corpus: errs.append(f'dev{n}: bad title {g!r}')
    if k not in ('exact','paraphrase','figure','topic','unanswerable','followup','multipart'): errs.append(f'dev{n} kind {k}')
    if k=='unanswerable' and (d['gold'] or d['answer_contains']): errs.append(f'dev{n} unanswerable nonempty')
    if k=='topic':
        if not 2<=len(d['gold'])<=8 or d['answer_contains']: errs.append(f'dev{n} topic size')
    if k in ('exact','paraphrase','figure','multipart'):
        if len(d['gold'])!=1 or not 1<=len(d['answer_contains'])<=2: errs.append(f'dev{n} single gold / ac count')
    if k=='followup' and not (isinstance(d.get('history'),list) and d['history']): errs.append(f'dev{n} history')
    if k=='multipart' and not d.get('unanswered_part'): errs.append(f'dev{n} unanswered_part')
    if k!='topic':
        for s in d['answer_contains']:
            if not any(s.lower() in corpus[g].lower() for g in d['gold'] if g in corpus):
                errs.append(f'dev{n} ({k}): {s!r} not in abstract of {d["gold"]}')
    if len(set(d['gold']))!=len(d['gold']): errs.append(f'dev{n} dup gold')
qs=[d['question'] for d in dev]
if len(set(qs))!=len(qs): errs.append('duplicate questions')
need={'exact':30,'paraphrase':30,'figure':20,'topic':12,'unanswerable':12,'followup':4,'multipart':4}
for k,v in need.items():
    if kinds.get(k,0)<v: errs.append(f'kind {k} count {kinds.get(k,0)}<{v}')
if len(dev)<130: errs.append('dev too short')
cmp=load('/work/main/eval/compare.jsonl')
for n,c in enumerate(cmp):
    for g in c['gold']:
        if g not in corpus: errs.append(f'cmp{n} bad title {g!r}')
    for t,s in c['results_contains'].items():
        if t not in c['gold']: errs.append(f'cmp{n} rc key not in gold')
        elif s.lower() not in corpus[t].lower(): errs.append(f'cmp{n} {s!r} not in {t}')
if len(cmp)<8: errs.append('compare <8')
if not any(c.get('unresolved') for c in cmp): errs.append('no unresolved compare')
for c in cmp:
    for u in c.get('unresolved',[]):
        hits=[t for t,a in corpus.items() if u.lower() in (t+' '+a).lower()]
        if hits: errs.append(f'unresolved {u} appears in corpus: {hits}')
rev=load('/work/main/eval/review.jsonl')
for n,r in enumerate(rev):
    for g in r['gold']:
        if g not in corpus: errs.append(f'rev{n} bad title {g!r}')
    if not 4<=len(r['gold'])<=15: errs.append(f'rev{n} size {len(r["gold"])}')
if len(rev)<6: errs.append('review <6')
print('dev',len(dev),kinds,'compare',len(cmp),'review',len(rev))
print('\n'.join(errs) if errs else 'ALL OK'); sys.exit(1 if errs else 0)
